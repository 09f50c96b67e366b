//! An ordered list of header fields, as received, with case-insensitive lookup.

use std::fmt;
use std::ops::Range;

/// Header fields in the order they arrived. Names keep their original case
/// (some backends care) and are compared case-insensitively; values are raw
/// bytes because RFC 9110 allows obs-text in them.
///
/// All names and values live in one byte buffer, with a list of ranges into
/// it: parsing a head costs two allocations, not two per field (measured:
/// those were most of the proxy's allocations per request). Removing a field
/// only drops its range; the bytes stay until the list is dropped.
#[derive(Clone, Default)]
pub struct Headers {
    bytes: Vec<u8>,
    fields: Vec<Field>,
}

#[derive(Clone, Copy)]
struct Field {
    name_start: u32,
    name_len: u32,
    value_start: u32,
    value_len: u32,
}

impl Field {
    /// The name as bytes: lookups and writing compare and copy bytes, and
    /// skip `name_of`'s UTF-8 check (measured: ~1% of a proxied request's
    /// CPU when every lookup checked every name).
    fn name_in<'a>(&self, bytes: &'a [u8]) -> &'a [u8] {
        &bytes[self.name_start as usize..(self.name_start + self.name_len) as usize]
    }

    fn is_named(&self, bytes: &[u8], name: &str) -> bool {
        // Lengths first: most fields a lookup passes differ in length, and
        // then the name need not even be found in `bytes`.
        self.name_len as usize == name.len()
            && self.name_in(bytes).eq_ignore_ascii_case(name.as_bytes())
    }
}

/// Whether `a` and `b` name one field for a backend that reads `_` as
/// `-` (CGI, WSGI, Rack): the same letters in any case, `_` and `-` taken
/// for one another.
pub fn read_alike(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && (a.iter().zip(b)).all(|(&x, &y)| {
            x.eq_ignore_ascii_case(&y) || matches!((x, y), (b'_', b'-') | (b'-', b'_'))
        })
}

impl Headers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Room for `n` fields of `bytes` bytes in all.
    pub fn with_capacity(n: usize, bytes: usize) -> Self {
        Headers {
            bytes: Vec::with_capacity(bytes),
            fields: Vec::with_capacity(n),
        }
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Room for `n` more fields of `bytes` bytes in all: a list parsed or
    /// cloned has none to spare, and fields pushed one by one would each
    /// grow it anew.
    pub fn reserve(&mut self, n: usize, bytes: usize) {
        self.fields.reserve(n);
        self.bytes.reserve(bytes);
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    fn name_of(&self, f: &Field) -> &str {
        // Names only ever come in as `&str` (see `push`).
        std::str::from_utf8(f.name_in(&self.bytes)).unwrap_or("")
    }

    fn value_of(&self, f: &Field) -> &[u8] {
        &self.bytes[f.value_start as usize..(f.value_start + f.value_len) as usize]
    }

    pub fn push(&mut self, name: impl AsRef<str>, value: impl AsRef<[u8]>) {
        let (name, value) = (name.as_ref().as_bytes(), value.as_ref());
        let name_start = self.bytes.len() as u32;
        self.bytes.extend_from_slice(name);
        let value_start = self.bytes.len() as u32;
        self.bytes.extend_from_slice(value);
        self.fields.push(Field {
            name_start,
            name_len: name.len() as u32,
            value_start,
            value_len: value.len() as u32,
        });
    }

    /// Replaces every field called `name` with one field holding `value`.
    pub fn set(&mut self, name: &str, value: impl AsRef<[u8]>) {
        self.remove(name);
        self.push(name, value);
    }

    /// Gives each field called `name` the value `edit` makes of its own,
    /// where it makes one, in place: the field keeps its place among the
    /// others and its name's spelling, where [`Headers::set`] would put
    /// one field last (the order of `Set-Cookie` fields matters: of two
    /// for one cookie, the later wins). Nothing is copied for a field
    /// `edit` leaves.
    pub fn edit_values(&mut self, name: &str, mut edit: impl FnMut(&[u8]) -> Option<Vec<u8>>) {
        for i in 0..self.fields.len() {
            let f = self.fields[i];
            if !f.is_named(&self.bytes, name) {
                continue;
            }
            let Some(value) = edit(self.value_of(&f)) else {
                continue;
            };
            // As `remove`, the old bytes stay until the list is dropped
            // (or compacted).
            self.fields[i].value_start = self.bytes.len() as u32;
            self.fields[i].value_len = value.len() as u32;
            self.bytes.extend_from_slice(&value);
        }
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        let field = self.fields.iter().find(|f| f.is_named(&self.bytes, name))?;
        Some(self.value_of(field))
    }

    /// The first value of `name`, if it is text, with surrounding whitespace trimmed.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name)
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::trim)
    }

    pub fn get_all<'a>(&'a self, name: &'a str) -> impl DoubleEndedIterator<Item = &'a [u8]> + 'a {
        self.fields
            .iter()
            .filter(move |f| f.is_named(&self.bytes, name))
            .map(|f| self.value_of(f))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The value of cookie `name` (compared as sent: case matters) in the
    /// first of the `Cookie` fields that carries it (a client may send
    /// several), as sent: quotes are kept. Read in place, nothing copied.
    pub fn cookie(&self, name: &str) -> Option<&[u8]> {
        (self.get_all("cookie").flat_map(cookie_pairs)).find_map(|pair| cookie_named(pair, name))
    }

    /// Removes every field called `name`; returns how many were removed.
    pub fn remove(&mut self, name: &str) -> usize {
        let before = self.fields.len();
        let bytes = &self.bytes;
        self.fields.retain(|f| !f.is_named(bytes, name));
        before - self.fields.len()
    }

    /// Drops the bytes of removed fields and any spare room: for a list
    /// kept long (a cached head), which would otherwise hold every field
    /// ever removed from it, uncounted by what it is weighed at.
    pub fn compact(&mut self) {
        let live = self
            .fields
            .iter()
            .map(|f| (f.name_len + f.value_len) as usize);
        let mut compacted = Headers::with_capacity(self.fields.len(), live.sum());
        for (name, value) in self.iter() {
            compacted.push(name, value);
        }
        *self = compacted;
    }

    /// What the list holds for each field beside its name and value: its
    /// ranges into the bytes.
    pub const INDEX_BYTES_PER_FIELD: usize = std::mem::size_of::<Field>();

    /// The bytes the list holds: names and values, removed ones too, and
    /// the ranges of its fields.
    #[cfg(test)]
    pub(crate) fn held_bytes(&self) -> usize {
        self.bytes.capacity() + self.fields.capacity() * Self::INDEX_BYTES_PER_FIELD
    }

    /// Keeps the fields for which `keep(name, value)` holds; names as
    /// bytes, like lookups (this runs on every request and response).
    pub fn retain(&mut self, mut keep: impl FnMut(&[u8], &[u8]) -> bool) {
        let mut fields = std::mem::take(&mut self.fields);
        fields.retain(|f| keep(f.name_in(&self.bytes), self.value_of(f)));
        self.fields = fields;
    }

    /// Names and values as bytes, as lookups read them: without
    /// [`Headers::iter`]'s check that each name is text (which it is).
    pub fn iter_bytes(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        (self.fields.iter()).map(|f| (f.name_in(&self.bytes), self.value_of(f)))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.fields
            .iter()
            .map(|f| (self.name_of(f), self.value_of(f)))
    }

    /// The comma-separated elements of every `name` field (RFC 9110 §5.6.1),
    /// trimmed, empty elements skipped: for fields made of tokens
    /// (`Connection`, `Upgrade`, `Vary`, `Transfer-Encoding`), where every
    /// comma splits, as any recipient splits them. An element that is not
    /// UTF-8 is skipped alone: the others on its line still count, or one
    /// odd byte would hide a `close` beside it.
    pub fn tokens<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        list_items(self.get_all(name).flat_map(|v| v.split(|&b| b == b',')))
    }

    /// `tokens` for fields whose elements may hold quoted strings
    /// (`Cache-Control: no-cache="a, b"`, entity-tags in `If-None-Match`):
    /// a comma inside a properly closed quoted string does not split.
    pub fn quoted_list<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        list_items(self.get_all(name).flat_map(ListElements::new))
    }

    /// Whether the list header `name` holds `token` (case-insensitive).
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.tokens(name).any(|t| t.eq_ignore_ascii_case(token))
    }

    /// Appends the fields as `Name: value\r\n` lines.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        self.write_matching(out, |_| true);
    }

    /// Appends the fields named in `names` (any case), as `write_to` does.
    pub fn write_named(&self, names: &[&str], out: &mut Vec<u8>) {
        self.write_matching(out, |f| names.iter().any(|n| f.is_named(&self.bytes, n)));
    }

    /// Appends the fields named in `names` (any case) for whose name
    /// `keep` holds, as `write_to` does.
    pub fn write_named_where(
        &self,
        names: &[&str],
        keep: impl Fn(&[u8]) -> bool,
        out: &mut Vec<u8>,
    ) {
        self.write_matching(out, |f| {
            names.iter().any(|n| f.is_named(&self.bytes, n)) && keep(f.name_in(&self.bytes))
        });
    }

    fn write_matching(&self, out: &mut Vec<u8>, wanted: impl Fn(&Field) -> bool) {
        for f in self.fields.iter().filter(|f| wanted(f)) {
            out.extend_from_slice(f.name_in(&self.bytes));
            out.extend_from_slice(b": ");
            out.extend_from_slice(self.value_of(f));
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// A cookie name as written in a setting (an HTTP token, RFC 6265
/// §4.1.1), as names are compared: as sent.
pub fn spell_cookie_name(name: &str) -> Result<Vec<u8>, String> {
    match name.bytes().all(crate::http::head::is_tchar) {
        true => Ok(name.as_bytes().to_vec()),
        false => Err(format!(
            "`{}` is not a cookie name (letters, digits and !#$%&'+-.^_`|~; no space, `=`, `;` \
             or quote)",
            name.escape_debug()
        )),
    }
}

/// The `;`-separated pairs of a `Cookie` field, trimmed, empty ones left out.
pub fn cookie_pairs(field: &[u8]) -> impl Iterator<Item = &[u8]> {
    field
        .split(|&b| b == b';')
        .map(<[u8]>::trim_ascii)
        .filter(|pair| !pair.is_empty())
}

/// The value of `pair` (`name=value`) if it is the cookie `name`.
pub fn cookie_named<'a>(pair: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let eq = pair.iter().position(|&b| b == b'=')?;
    (&pair[..eq] == name.as_bytes()).then(|| &pair[eq + 1..])
}

/// Where the values of a `Set-Cookie` field's attributes of the name
/// `named` (`path`, `domain`) are in it (byte ranges),
/// first to last, as RFC 6265 §5.2 reads the field: the attributes are
/// what follows the first `;`, split at every `;` (quotes mean nothing
/// there); an attribute's name is what comes before its first `=` (any
/// case), its value what comes after, each without the spaces and tabs
/// around it. One without `=` has no value, and is not given.
pub fn set_cookie_attributes<'a>(
    field: &'a [u8],
    named: &'static str,
) -> impl Iterator<Item = Range<usize>> + 'a {
    let attributes = (field.iter().position(|&b| b == b';')).map_or(field.len(), |i| i + 1);
    let mut start = attributes;
    (field[attributes..].split(|&b| b == b';'))
        .map(move |attribute| {
            let at = start;
            start += attribute.len() + 1;
            (at, attribute)
        })
        .filter_map(|(at, attribute)| {
            let eq = attribute.iter().position(|&b| b == b'=')?;
            let name = &attribute[..eq];
            if !name[trim_wsp(name)].eq_ignore_ascii_case(named.as_bytes()) {
                return None;
            }
            let value = trim_wsp(&attribute[eq + 1..]);
            let offset = at + eq + 1;
            Some(offset + value.start..offset + value.end)
        })
}

/// Where `bytes` is without the spaces and tabs (RFC 5234's WSP) at
/// either end.
fn trim_wsp(bytes: &[u8]) -> Range<usize> {
    let is_wsp = |b: &&u8| matches!(b, b' ' | b'\t');
    let lead = bytes.iter().take_while(is_wsp).count();
    let trail = bytes[lead..].iter().rev().take_while(is_wsp).count();
    lead..bytes.len() - trail
}

/// List elements as text: trimmed, empty ones skipped, and one that is not
/// UTF-8 skipped alone.
fn list_items<'a>(
    elements: impl Iterator<Item = &'a [u8]> + 'a,
) -> impl Iterator<Item = &'a str> + 'a {
    elements
        .filter_map(|t| std::str::from_utf8(t.trim_ascii()).ok())
        .filter(|t| !t.is_empty())
}

/// Appends the lines of a serialized head (`Name: value\r\n` each, as
/// `Headers::write_to` writes them) but those of the fields named in
/// `names` (any case). A status line is kept: no name is followed by its
/// colon there.
pub fn push_lines_except(out: &mut Vec<u8>, lines: &[u8], names: &[&str]) {
    for line in lines.split_inclusive(|&b| b == b'\n') {
        let named = |name: &&str| {
            line.len() > name.len()
                && line[..name.len()].eq_ignore_ascii_case(name.as_bytes())
                && line[name.len()] == b':'
        };
        if !names.iter().any(named) {
            out.extend_from_slice(line);
        }
    }
}

/// The elements of one list field value, untrimmed, empty ones included
/// (see [`ListElements`]).
pub(crate) fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    ListElements::new(value)
}

/// The elements of one list field value, split at commas outside quoted
/// strings (a backslash escapes the next byte inside one). A quote left
/// open to the end of the value proves nothing: from that element on,
/// every comma splits, so an unbalanced quote cannot hide a `private`
/// that any other reader would see.
struct ListElements<'a> {
    rest: Option<&'a [u8]>,
    plain: bool,
}

impl<'a> ListElements<'a> {
    fn new(value: &'a [u8]) -> Self {
        ListElements {
            rest: Some(value),
            plain: false,
        }
    }

    /// The end of the element at the start of `rest`, honouring quotes;
    /// `None` if a quote is left open, or opens where no quoted string
    /// may start (RFC 9110 §5.6.4: a parameter value after `=`, or an
    /// entity-tag, `"x"` or `W/"x"`): `a"b, private, c"d` is not one
    /// element hiding a `private`.
    ///
    /// What comes before a quote is known from the first and last bytes
    /// of the element that are not whitespace so far: trimmed again at
    /// each quote, it cost time in the square of the element's length
    /// (a run of spaces, then `a=""=""=""...`: seconds of a core for one
    /// 64 KiB `Cache-Control`).
    fn quoted_end(rest: &[u8]) -> Option<usize> {
        let (mut quoted, mut escaped) = (false, false);
        let mut seen: Option<(usize, usize)> = None;
        for (i, &b) in rest.iter().enumerate() {
            match b {
                _ if escaped => escaped = false,
                b'\\' if quoted => escaped = true,
                b'"' if quoted => quoted = false,
                b'"' => {
                    let before = seen.map_or(&b""[..], |(first, last)| &rest[first..=last]);
                    if !(before.is_empty() || before.ends_with(b"=") || before == b"W/") {
                        return None;
                    }
                    quoted = true;
                }
                b',' if !quoted => return Some(i),
                _ => {}
            }
            if !b.is_ascii_whitespace() {
                seen = Some((seen.map_or(i, |(first, _)| first), i));
            }
        }
        (!quoted).then_some(rest.len())
    }
}

impl<'a> Iterator for ListElements<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        let end = match (self.plain, Self::quoted_end(rest)) {
            (false, Some(end)) => end,
            _ => {
                self.plain = true;
                rest.iter().position(|&b| b == b',').unwrap_or(rest.len())
            }
        };
        self.rest = rest.get(end + 1..);
        Some(&rest[..end])
    }
}

/// Equal when they hold the same fields in the same order (however their
/// buffers got there).
impl PartialEq for Headers {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Headers {}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(n, v)| (n, String::from_utf8_lossy(v))))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_dropped_by_their_whole_name_only() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Type: a\r\ncontent-type-options: b\r\nCONTENT-RANGE: c\r\nX: content-type: d\r\n";
        let mut out = Vec::new();
        push_lines_except(&mut out, head, &["content-type", "content-range"]);
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\ncontent-type-options: b\r\nX: content-type: d\r\n"
        );
        // A last line that is the name alone, without its colon, names
        // no field.
        out.clear();
        push_lines_except(&mut out, b"X: 1\r\nvia", &["via"]);
        assert_eq!(out, b"X: 1\r\nvia");
    }

    #[test]
    fn lookup_is_case_insensitive_and_ordered() {
        let mut h = Headers::new();
        h.push("Cache-Control", "no-cache");
        h.push("cache-control", "max-age=5");
        assert_eq!(h.get("CACHE-CONTROL"), Some(&b"no-cache"[..]));
        assert_eq!(h.get_all("cache-control").count(), 2);
        assert!(h.has_token("Cache-Control", "MAX-AGE=5"));
        assert_eq!(h.remove("Cache-control"), 2);
        assert!(h.is_empty());
    }

    #[test]
    fn a_cookie_is_found_by_its_exact_name_in_any_cookie_field() {
        let mut h = Headers::new();
        h.push("Cookie", "sid2=x; SID=y;; sid=\"q 1\" ;a=1");
        h.push("cookie", b"sid=later; caf\xe9=1".as_slice());
        assert_eq!(h.cookie("sid"), Some(&b"\"q 1\""[..]), "the first, as sent");
        assert_eq!(h.cookie("SID"), Some(&b"y"[..]));
        assert_eq!(h.cookie("a"), Some(&b"1"[..]));
        assert_eq!(h.cookie("si"), None);
        let mut h = Headers::new();
        h.push("Cookie", "flag; empty=");
        assert_eq!(h.cookie("flag"), None, "a pair without `=` has no value");
        assert_eq!(h.cookie("empty"), Some(&b""[..]));
        assert_eq!(Headers::new().cookie("sid"), None);
    }

    #[test]
    fn a_value_edited_in_place_keeps_its_field_s_place_and_name() {
        let mut h = Headers::new();
        h.push("Set-Cookie", "a=1");
        h.push("X-Other", "x");
        h.push("set-COOKIE", "b=2");
        h.push("Set-Cookie", "c=3");
        h.edit_values("set-cookie", |v| (v != b"a=1").then(|| [v, b"!"].concat()));
        let mut out = Vec::new();
        h.write_to(&mut out);
        let want = "Set-Cookie: a=1\r\nX-Other: x\r\nset-COOKIE: b=2!\r\nSet-Cookie: c=3!\r\n";
        assert_eq!(String::from_utf8(out).unwrap(), want);
        assert_eq!(h.get("x-other"), Some(&b"x"[..]));
    }

    #[test]
    fn a_set_cookie_s_paths_are_its_path_attributes_values_trimmed() {
        fn paths(field: &str) -> Vec<&str> {
            (set_cookie_attributes(field.as_bytes(), "path"))
                .map(|span| &field[span])
                .collect()
        }
        assert_eq!(
            paths("a=1; Path=/x; path = /y\t;PATH=;Path"),
            ["/x", "/y", ""]
        );
        assert_eq!(paths(" Path=/x ;Secure; Path=\"/q;\" "), ["\"/q"]);
        assert_eq!(paths("Path=/x"), [] as [&str; 0], "the cookie itself");
        assert_eq!(
            paths("a=1; Paths=/x; XPath=/y; =/z; Domain=/w"),
            [] as [&str; 0]
        );
        assert_eq!(paths("a=1;Path=/x;"), ["/x"]);
        assert_eq!(paths(";Path=/x"), ["/x"], "a cookie without a name");
    }

    #[test]
    fn tokens_split_lists_across_fields() {
        let mut h = Headers::new();
        h.push("Connection", " keep-alive , ,X-Foo");
        h.push("Connection", "close");
        let t: Vec<_> = h.tokens("connection").collect();
        assert_eq!(t, ["keep-alive", "X-Foo", "close"]);
    }

    #[test]
    fn lists_keep_quoted_commas_and_survive_odd_bytes() {
        let mut h = Headers::new();
        h.push("Cache-Control", r#"no-cache="Set-Cookie, X-A", max-age=5"#);
        h.push(
            "Cache-Control",
            b"private, x-note=\"caf\xe9, \\\"q\\\"\", no-store",
        );
        h.push("ETag", r#""a,b""#);
        let t: Vec<_> = h.quoted_list("cache-control").collect();
        assert_eq!(
            t,
            [
                r#"no-cache="Set-Cookie, X-A""#,
                "max-age=5",
                "private",
                "no-store"
            ]
        );
        assert_eq!(h.quoted_list("etag").collect::<Vec<_>>(), [r#""a,b""#]);
        // A quote left open, or opened where no quoted string may start,
        // hides nothing: every comma splits from there.
        h.push("Pragma", r#"max-age=600, x="y, private, z"#);
        let t: Vec<_> = h.quoted_list("pragma").collect();
        assert_eq!(t, ["max-age=600", r#"x="y"#, "private", "z"]);
        h.push("Expect", r#"max-age=600, a"b, private, c"d"#);
        let t: Vec<_> = h.quoted_list("expect").collect();
        assert_eq!(t, ["max-age=600", r#"a"b"#, "private", r#"c"d"#]);
        h.push("If-None-Match", r#"W/"a,b", "c,d""#);
        let t: Vec<_> = h.quoted_list("if-none-match").collect();
        assert_eq!(t, [r#"W/"a,b""#, r#""c,d""#]);
        // Token lists split at every comma, quotes or not; an element that
        // is not UTF-8 goes alone.
        h.push("Upgrade", r#""x, h2c"#);
        assert_eq!(h.tokens("upgrade").collect::<Vec<_>>(), [r#""x"#, "h2c"]);
        h.push("Connection", b"close, X-Hop, \xff");
        assert_eq!(
            h.tokens("connection").collect::<Vec<_>>(),
            ["close", "X-Hop"]
        );
    }

    proptest::proptest! {
        /// Without quotes both readers agree; with them, `quoted_list` never
        /// loses an element that a plain comma split sees whole and that
        /// names a directive (a token alone): what a quote may hide is only
        /// text inside a properly placed, closed quoted string.
        #[test]
        fn quotes_hide_no_bare_directive(
            parts in proptest::collection::vec("[a-z\\-]{1,8}|\"[a-z ,]{0,6}\"?|[a-z]{1,4}=\"[a-z ,]{0,6}\"?|[a-z]\"[a-z]", 1..8),
        ) {
            let value = parts.join(", ");
            let mut h = Headers::new();
            h.push("Cache-Control", &value);
            let quoted: Vec<&str> = h.quoted_list("cache-control").collect();
            let plain: Vec<&str> = h.tokens("cache-control").collect();
            if !value.contains('"') {
                proptest::prop_assert_eq!(&quoted, &plain);
            }
            // A bare token (no quote, no `=`) a plain reader sees, that is
            // not inside a closed quoted string opened after `=` or at an
            // element's start, is seen by quoted_list too.
            let mut inside = false;
            let mut at_start = true;
            let mut after_eq = false;
            let mut hidden = String::new();
            for c in value.chars() {
                match c {
                    '"' if inside => inside = false,
                    '"' if at_start || after_eq => inside = true,
                    ',' if !inside => at_start = true,
                    ' ' => {}
                    _ => at_start = false,
                }
                after_eq = c == '=';
                if inside {
                    hidden.push(c);
                }
            }
            for token in plain.iter().filter(|t| t.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')) {
                if !hidden.contains(token) {
                    proptest::prop_assert!(quoted.contains(token), "{token} hidden in {value:?}: {quoted:?}");
                }
            }
        }
    }

    /// `ListElements::quoted_end` as it was, trimming what comes before
    /// each quote: the reference the one that keeps track must agree with.
    fn quoted_end_by_trimming(rest: &[u8]) -> Option<usize> {
        let (mut quoted, mut escaped) = (false, false);
        for (i, &b) in rest.iter().enumerate() {
            match b {
                _ if escaped => escaped = false,
                b'\\' if quoted => escaped = true,
                b'"' if quoted => quoted = false,
                b'"' => {
                    let before = rest[..i].trim_ascii();
                    if !(before.is_empty() || before.ends_with(b"=") || before == b"W/") {
                        return None;
                    }
                    quoted = true;
                }
                b',' if !quoted => return Some(i),
                _ => {}
            }
        }
        (!quoted).then_some(rest.len())
    }

    proptest::proptest! {
        #[test]
        fn the_end_of_a_quoted_element_is_found_as_by_trimming(
            value in "[ \t\"=,W/\\\\a]{0,24}",
        ) {
            let bytes = value.as_bytes();
            proptest::prop_assert_eq!(
                ListElements::quoted_end(bytes),
                quoted_end_by_trimming(bytes),
                "{:?}", value
            );
        }
    }

    #[test]
    fn many_quoted_strings_after_a_run_of_spaces_are_read() {
        // 1 MiB, in one pass (trimming before each quote took minutes).
        let value = format!(
            "x,{}a{}, private",
            " ".repeat(1 << 19),
            "=\"\"".repeat(1 << 17)
        );
        let mut h = Headers::new();
        h.push("Cache-Control", &value);
        let elements: Vec<&str> = h.quoted_list("cache-control").collect();
        assert_eq!(elements.len(), 3);
        assert_eq!(elements[2], "private");
    }

    #[test]
    fn a_list_counts_its_fields_and_keeps_their_names_as_sent() {
        let mut h = Headers::new();
        assert!(h.is_empty());
        h.push("X-Mixed_Case", " v \t");
        h.push("Via", "1.1 a");
        h.push("x-mixed_case", "2");
        assert_eq!(h.len(), 3);
        assert!(!h.is_empty());
        let names: Vec<&str> = h.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["X-Mixed_Case", "Via", "x-mixed_case"]);
        assert_eq!(h.get_str("x-mixed_case"), Some("v"));
        assert_eq!(h.get_str("age"), None);
        assert!(h.contains("VIA"));
        assert!(!h.contains("age"), "as long as `Via`, but another name");
        assert!(!h.has_token("connection", "close"));
        assert_eq!(h.remove("X-MIXED_CASE"), 2, "only those it removed");
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn read_alike_takes_underscores_for_dashes_in_names_of_one_length() {
        assert!(read_alike(b"X_Api_Key", b"x-api-key"));
        assert!(read_alike(b"x-api-key", b"X_API_KEY"));
        assert!(read_alike(b"Accept", b"ACCEPT"));
        for (a, b) in [
            (&b"X-Debug"[..], &b"X-Debugs"[..]),
            (b"X-Debugs", b"X-Debug"),
            (b"X.Debug", b"X-Debug"),
            (b"X_Debug", b"X-Debuh"),
        ] {
            assert!(!read_alike(a, b), "{a:?} {b:?}");
        }
    }

    #[test]
    fn compacting_keeps_the_live_fields_and_drops_the_rest() {
        let mut h = Headers::new();
        for i in 0..9 {
            h.push(format!("X-Field-{i}"), format!("a longer value {i}"));
        }
        h.retain(|name, _| name.ends_with(b"0") || name.ends_with(b"7"));
        let kept = |h: &Headers| -> Vec<(String, Vec<u8>)> {
            h.iter().map(|(n, v)| (n.to_string(), v.to_vec())).collect()
        };
        let before = kept(&h);
        assert_eq!(before.len(), 2);
        assert_eq!(before[1].0, "X-Field-7");
        h.compact();
        assert_eq!(kept(&h), before);
        // A cached head is weighed by what it holds: no removed bytes,
        // no spare room.
        let live: usize = before.iter().map(|(n, v)| n.len() + v.len()).sum();
        assert!(
            h.held_bytes() <= live + 2 * Headers::INDEX_BYTES_PER_FIELD,
            "{} held for {live}",
            h.held_bytes()
        );
    }

    #[test]
    fn named_fields_are_written_in_order_and_where_kept() {
        let mut h = Headers::new();
        h.push("Set-Cookie", "a=1");
        h.push("Via", "1.1 a");
        h.push("set-cookie", "b=2");
        h.push("Age", "3");
        let mut out = Vec::new();
        h.write_named(&["SET-COOKIE", "age"], &mut out);
        assert_eq!(out, b"Set-Cookie: a=1\r\nset-cookie: b=2\r\nAge: 3\r\n");
        out.clear();
        h.write_named_where(&["set-cookie", "via"], |n| n != b"set-cookie", &mut out);
        assert_eq!(out, b"Set-Cookie: a=1\r\nVia: 1.1 a\r\n");
    }

    #[test]
    fn lists_are_equal_by_their_fields_in_order_and_show_them() {
        let mut a = Headers::new();
        a.push("Age", "1");
        a.push("X-Gone", "x");
        a.remove("x-gone");
        let mut b = Headers::new();
        b.push("Age", "1");
        assert_eq!(a, b, "whatever bytes removed fields left");
        let mut c = Headers::new();
        c.push("Age", "2");
        assert_ne!(a, c, "as many fields, another value");
        assert_eq!(format!("{a:?}"), r#"{"Age": "1"}"#);
    }

    #[test]
    fn list_elements_are_untrimmed_with_empty_ones() {
        let elements: Vec<&[u8]> = list_elements(br#"a, "b,c" ,,d"#).collect();
        assert_eq!(elements, [&b"a"[..], br#" "b,c" "#, b"", b"d"]);
    }

    #[test]
    fn set_replaces_all_values() {
        let mut h = Headers::new();
        h.push("A", "1");
        h.push("a", "2");
        h.set("A", "3");
        let mut out = Vec::new();
        h.write_to(&mut out);
        assert_eq!(out, b"A: 3\r\n");
    }
}
