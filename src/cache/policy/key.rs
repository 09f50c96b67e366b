//! Cache keys: a request's primary key, the keys a `Location` names, the
//! variant key a response's `Vary` adds, and stored keys respelled as
//! today's rules spell them.

use super::IgnoredParams;
use crate::http::forward::is_hop_by_hop;
use crate::http::head::{push_canonical_authority, split_absolute};
use crate::http::headers::{cookie_named, cookie_pairs, list_elements, read_alike};
use crate::http::{Headers, RequestHead, ResponseHead};
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// What starts the key of a request the client made over TLS (to a proxy
/// in front that terminated it, see [`crate::realip::client_scheme`]):
/// an application may answer `http` and `https` differently (a redirect
/// to `https` for the one, the page for the other), so they are stored
/// apart, as nginx's default key begins with `$scheme`.
const HTTPS_PREFIX: &str = "https://";

/// The cache key of a request: host (lower-cased) and target path with
/// query, after `https://` when `scheme` is `https`; without the query
/// parameters `ignored` names (see [`push_query`]).
pub fn primary_key(request: &RequestHead, scheme: &str, ignored: &IgnoredParams) -> String {
    let authority = request.authority().unwrap_or("");
    let path = request.path_and_query();
    let mut key = String::with_capacity(HTTPS_PREFIX.len() + authority.len() + path.len());
    if scheme == "https" {
        key.push_str(HTTPS_PREFIX);
    }
    push_canonical_authority(&mut key, authority);
    if ignored.is_empty() {
        push_path(&mut key, &path);
    } else {
        let (path, query) = path.split_at(path.find('?').unwrap_or(path.len()));
        push_path(&mut key, path);
        push_query(&mut key, query, ignored);
    }
    key
}

/// The keys a request's URI may be stored under, one per scheme: a change
/// to the resource (a POST, a PURGE) drops both.
pub fn primary_keys_of_uri(request: &RequestHead, ignored: &IgnoredParams) -> [String; 2] {
    let http = primary_key(request, "http", ignored);
    let https = format!("{HTTPS_PREFIX}{http}");
    [http, https]
}

/// What a `PURGE` whose request-target ends in `*` names (see
/// [`prefix_keys_of_uri`]).
#[derive(Debug, PartialEq, Eq)]
pub struct PrefixKeys {
    /// The key prefixes, one per scheme, the `http` one first.
    pub prefixes: [String; 2],
    /// With `cache_key_ignore_params`, when the prefix ends its query at a
    /// `?` or `&`: the key it would have without it, one per scheme. A URL
    /// under the prefix whose remaining parameters are all ignored is
    /// stored there (`/p?utm_source=a&utm_medium=b` is `/p`, under the
    /// prefix `/p?` of `/p?utm_source=a&*`), which no key that starts with
    /// the prefix is.
    pub bare: Option<[String; 2]>,
}

/// The key prefixes a `PURGE` whose request-target ends in `*` names, one
/// per scheme as [`primary_keys_of_uri`] gives keys: the key of what comes
/// before the `*`, spelled as keys are, so that `/products/*` and
/// `/%70roducts/*` under `Host: Shop.Example` are both
/// `shop.example/products/`. `None` for a target that does not end in `*`.
///
/// The parameters `ignored` names are left out of the query as from a
/// request's, the last one too, which the `*` cuts short, when it may be
/// one of them: `/p?utm_source=a&*` and `/p?gclid=*` are `/p?`, and
/// `/p?id=3&gclid=*` is `/p?id=3&`, each with its bare key (`/p`,
/// `/p?id=3`) besides, where such URLs with nothing but trackers after
/// are stored. So is a name still being typed that an ignored one may
/// begin with: `/p?gcl*` names `/p?gclid=1`, stored as `/p`, and
/// `/p?id=3&gclid=1&page=2`, stored as `/p?id=3&page=2`; its prefix is
/// `/p?` (it drops `/p?utmost=1` too: a purge may drop too much, never
/// too little). One that no ignored name begins with is kept
/// (`/p?page*` is `/p?page`).
pub fn prefix_keys_of_uri(request: &RequestHead, ignored: &IgnoredParams) -> Option<PrefixKeys> {
    let target = request.path_and_query();
    let before = without_cut_escape(target.strip_suffix('*')?);
    let authority = request.authority().unwrap_or("");
    let mut key = String::with_capacity(authority.len() + before.len());
    push_canonical_authority(&mut key, authority);
    let (path, query) = before.split_at(before.find('?').unwrap_or(before.len()));
    push_path(&mut key, path);
    let mut bare = None;
    if ignored.is_empty() || query.is_empty() {
        push_path(&mut key, query);
    } else {
        // `query` begins with its `?`: the whole parameters up to the
        // last `&` (or none), then the one the `*` cuts.
        let (whole, cut) = query.split_at(query.rfind('&').map_or(1, |i| i + 1));
        let start = key.len();
        push_query(&mut key, whole, ignored);
        let separated = key.len();
        key.push(if separated == start { '?' } else { '&' });
        let cut_at = key.len();
        push_path(&mut key, cut);
        if cut_may_be_ignored(&key[cut_at..], ignored) {
            key.truncate(cut_at);
        }
        if key.len() == cut_at {
            let http = &key[..separated];
            bare = Some([http.to_string(), format!("{HTTPS_PREFIX}{http}")]);
        }
    }
    let https = format!("{HTTPS_PREFIX}{key}");
    Some(PrefixKeys {
        prefixes: [key, https],
        bare,
    })
}

/// `before` less a `%` or `%H` at its end: a percent-escape the `*` may
/// have cut short (`/search?q=100%*`, meant for `100%2F...` as well as
/// for a lone `%`). Spelled as a key spells a lone `%` (`%25`), the
/// prefix would match neither reading but the one; cut before it, it
/// matches both, and more: a purge may drop too much (a miss each), never
/// too little (a stale page left in place).
fn without_cut_escape(before: &str) -> &str {
    let cut = match before.as_bytes() {
        [.., b'%'] => 1,
        [.., b'%', h] if h.is_ascii_hexdigit() => 2,
        _ => 0,
    };
    &before[..before.len() - cut]
}

/// The keys of the URI a `Location` or `Content-Location` names in the
/// answer to an unsafe request whose own keys are `request_keys` (from
/// [`primary_keys_of_uri`]). RFC 9111 §4.4 makes them candidates for
/// invalidation too, and forbids it for another origin: a reference to
/// another host, or one that is not HTTP, gives `None`. A relative
/// reference is resolved against the request's path (RFC 3986 §5.2), and
/// its query keyed as a request's is, without the parameters `ignored`
/// names.
pub fn keys_of_reference(
    request_keys: &[String; 2],
    reference: &str,
    ignored: &IgnoredParams,
) -> Option<[String; 2]> {
    let base = &request_keys[0];
    let (authority, base_path) = base.split_at(base.find('/').unwrap_or(base.len()));
    let reference = reference.split('#').next().unwrap_or_default().trim();
    let reference = &*as_followed(reference);
    let network_path = split_absolute(reference).or_else(|| {
        let rest = reference.strip_prefix("//")?;
        Some(rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len())))
    });
    let path = match network_path {
        Some((their_authority, rest)) => {
            let mut theirs = String::with_capacity(their_authority.len());
            push_canonical_authority(&mut theirs, their_authority);
            if theirs != authority {
                return None;
            }
            match rest {
                path if path.starts_with('/') => path.to_string(),
                query => format!("/{query}"),
            }
        }
        None if reference.starts_with('/') => reference.to_string(),
        // Empty (the request's own URI, already dropped), or with another
        // scheme (`mailto:`): a relative path has no `:` in its first
        // segment.
        None if reference.is_empty()
            || reference[..reference.find(['/', '?']).unwrap_or(reference.len())].contains(':') =>
        {
            return None
        }
        None => {
            let base_path = &base_path[..base_path.find('?').unwrap_or(base_path.len())];
            if reference.starts_with('?') {
                format!("{base_path}{reference}")
            } else {
                let dir = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
                format!("{dir}{reference}")
            }
        }
    };
    let (path, query) = path.split_at(path.find('?').unwrap_or(path.len()));
    let mut key = String::with_capacity(authority.len() + path.len() + query.len());
    key.push_str(authority);
    push_path(&mut key, &remove_dot_segments(path));
    push_query(&mut key, query, ignored);
    let https = format!("{HTTPS_PREFIX}{key}");
    Some([key, https])
}

/// A reference as a browser follows it (the WHATWG URL parser): tabs
/// dropped, and what a URI may not hold raw (a non-ASCII character, a
/// space), which some applications put in a `Location` as given,
/// percent-encoded in UTF-8. Request targets with such bytes are refused,
/// so only the encoded spelling can name a stored entry.
fn as_followed(reference: &str) -> Cow<'_, str> {
    if reference.bytes().all(|b| b.is_ascii_graphic()) {
        return Cow::Borrowed(reference);
    }
    let mut out = String::with_capacity(reference.len() * 3);
    for b in reference.bytes().filter(|&b| b != b'\t') {
        if b.is_ascii_graphic() {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    Cow::Owned(out)
}

/// RFC 3986 §5.2.4, for a path that starts with `/`: what a client that
/// follows the reference asks for.
pub(crate) fn remove_dot_segments(path: &str) -> Cow<'_, str> {
    if !path.split('/').any(|s| s == "." || s == "..") {
        return Cow::Borrowed(path);
    }
    let mut out: Vec<&str> = Vec::new();
    let mut last = "";
    for segment in path.split('/').skip(1) {
        match segment {
            "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
        last = segment;
    }
    // `/a/b/..` is the directory `/a/`.
    if last == "." || last == ".." {
        out.push("");
    }
    Cow::Owned(format!("/{}", out.join("/")))
}

/// A stored key (a snapshot's) spelled as [`primary_key`] and
/// [`variant_key`] spell it today: a key written before a spelling rule
/// existed would never be looked up again, and only take room until
/// evicted.
pub fn respell_key(key: &str) -> String {
    let (primary, variant) = key.split_at(key.find('\n').unwrap_or(key.len()));
    let scheme = match is_https_key(primary) {
        true => HTTPS_PREFIX,
        false => "",
    };
    let (authority, path) = split_key(primary);
    let mut respelled = String::with_capacity(key.len());
    respelled.push_str(scheme);
    push_canonical_authority(&mut respelled, authority);
    push_path(&mut respelled, path);
    respelled.push_str(&respell_variant(variant));
    respelled
}

/// Whether `primary`, a primary key, is that of a request that came over
/// HTTPS (see [`primary_key`]).
pub fn is_https_key(primary: &str) -> bool {
    primary.starts_with(HTTPS_PREFIX)
}

/// A primary key's authority and its path and query, whatever its
/// scheme: `https://shop.example/a?b` and `shop.example/a?b` are both
/// `("shop.example", "/a?b")`.
pub fn split_key(primary: &str) -> (&str, &str) {
    let primary = primary.strip_prefix(HTTPS_PREFIX).unwrap_or(primary);
    primary.split_at(primary.find('/').unwrap_or(primary.len()))
}

/// The authority of a request as its keys spell it (see [`primary_key`]).
pub fn key_authority(request: &RequestHead) -> String {
    let mut authority = String::new();
    push_canonical_authority(&mut authority, request.authority().unwrap_or(""));
    authority
}

/// The path and query with percent-encodings in one spelling (RFC 3986
/// §6.2.2.1, §6.2.2.2): hex digits upper-cased, and an encoded unreserved
/// character (letter, digit, `-_~`) decoded. `/a%2fb`, `/a%2Fb` name
/// one resource, `/%7Euser` and `/~user` another; without this each
/// spelling would be an entry of its own, and a PURGE of one would leave
/// the others. Reserved characters stay encoded: `%2F` is not `/`. Nor
/// is `%2E` decoded: `/a/%2E%2E/b` would become a dot-segment, which
/// backends resolve while some take the encoded form literally.
pub fn push_path(key: &mut String, path: &str) {
    if !path.contains('%') {
        key.push_str(path);
        return;
    }
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let encoded = (bytes[i] == b'%')
            .then(|| {
                Some((
                    hex_digit(*bytes.get(i + 1)?)?,
                    hex_digit(*bytes.get(i + 2)?)?,
                ))
            })
            .flatten();
        match encoded {
            Some((hi, lo)) => {
                let c = char::from(hi << 4 | lo);
                if c.is_ascii_alphanumeric() || "-_~".contains(c) {
                    key.push(c);
                } else {
                    let _ = write!(key, "%{:02X}", hi << 4 | lo);
                }
                i += 3;
            }
            None => {
                // A lone `%` (`?q=100%`, as browsers send what was typed)
                // is written as the escape it stands for: kept bare, `%` + a decoded `3` + `0` would
                // read as `%30`. Stepping by char keeps UTF-8 whole.
                let c = path[i..].chars().next().unwrap_or('%');
                match c {
                    '%' => key.push_str("%25"),
                    c => key.push(c),
                }
                i += c.len_utf8();
            }
        }
    }
}

/// A query (empty, or from its `?`) in a key: as [`push_path`] spells it
/// when `ignored` is empty, the one branch a request pays when the
/// setting is off. Otherwise the parameters (the `&`-separated pieces of
/// the query, each named by what comes before its first `=`, or whole
/// when it has none) that `ignored` does not name, in the order sent,
/// joined by one `&`: `?id=3&utm_source=a` and `?utm_source=b&id=3` are
/// both `?id=3`, and a query left with none is no query (`/p?utm_source=a`
/// is `/p`, as is `/p?`). The order is kept, not sorted: some applications
/// read `?a=1&b=2` and `?b=2&a=1` apart. Empty pieces (`&&`, a trailing
/// `&`) are no parameters, as every query parser reads them. A name is
/// compared as the key spells it: `utm%5Fsource` is `utm_source` in the
/// key already, so it is left out with it; `%26` and `%3D` stay encoded,
/// so they neither split a parameter nor end its name, in the key as in
/// the backend's parser. Each parameter is written into `key` and taken
/// back if ignored: one pass, no other allocation.
///
/// An ignored parameter with a `;` in it, in its name or its value, is
/// read as well as a backend whose parser splits the query at `;` too
/// reads it (see [`ignored_either_way`]): left out of the key, what that
/// backend finds after the `;` could change the answer and not the key.
fn push_query(key: &mut String, query: &str, ignored: &IgnoredParams) {
    if ignored.is_empty() {
        push_path(key, query);
        return;
    }
    let Some(params) = query.strip_prefix('?') else {
        return;
    };
    let start = key.len();
    for param in params.split('&').filter(|p| !p.is_empty()) {
        let mark = key.len();
        key.push(if mark == start { '?' } else { '&' });
        let name_at = key.len();
        push_path(key, param);
        if ignored_either_way(&key[name_at..], ignored) {
            key.truncate(mark);
        }
    }
}

/// Whether the parameter `spelled` (as the key spells it) is ignored
/// however a backend splits the query: by the name before its first `=`,
/// and, when it holds a `;`, by the name of each non-empty `;`-separated
/// piece too, as a parser that splits at `;` as well as `&` reads it
/// (Rack 2, Python's `parse_qs` before 3.9.2, Go before 1.17). Else it
/// stays in the key as written: `&utm_source=x;callback=alert(1)` is a
/// `callback` to such a backend, which answers it, and a key without it
/// would file that answer under the URL without it for everyone
/// ("parameter cloaking"). The key so stays at least as specific as any
/// backend's reading of the query; a tracker's value rarely holds a `;`,
/// so little sharing is lost, and `utm_source=x;utm_medium=y` (or any
/// query under a lone `*`) is still left out whole.
/// Whether the parameter a purge's `*` cuts short (`cut`, as the key
/// spells it) may be one `ignored` leaves out of keys: its `;` pieces
/// before the last are (see [`ignored_either_way`]), and the last is, or
/// is a name still being typed that an ignored one may begin with.
fn cut_may_be_ignored(cut: &str, ignored: &IgnoredParams) -> bool {
    let (whole, last) = cut.rsplit_once(';').unwrap_or(("", cut));
    let last_may_be = match last.split_once('=') {
        Some((name, _)) => ignored.matches(name),
        None => ignored.may_begin(last),
    };
    last_may_be && (whole.is_empty() || ignored_either_way(whole, ignored))
}

fn ignored_either_way(spelled: &str, ignored: &IgnoredParams) -> bool {
    let named = |piece: &str| ignored.matches(&piece[..piece.find('=').unwrap_or(piece.len())]);
    named(spelled) && spelled.split(';').filter(|p| !p.is_empty()).all(named)
}

fn hex_digit(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).map(|d| d as u8)
}

/// The field names a response varies on, lower-cased, sorted, each once:
/// `Vary: Origin, Accept-Encoding` and `Vary: accept-encoding, origin`
/// are one set, and key variants alike (a 304 listing them in another
/// order is about the same variants).
pub fn vary_names(response: &ResponseHead) -> Vec<String> {
    let names: BTreeSet<String> = response
        .headers
        .tokens("vary")
        .map(str::to_ascii_lowercase)
        .collect();
    names.into_iter().collect()
}

/// The key of one variant: the primary key, then each varying request
/// field: its name alone when the request lacks it (absent matches only
/// absent), else `name=` and its value in one spelling (see
/// `push_variant_value`).
///
/// A field the proxy drops before forwarding (a hop-by-hop one, or one the
/// request's `Connection` names) counts as absent: the key describes the
/// request the backend answered, or a client could file the answer to
/// its stripped request under the variant of a field it never reached.
///
/// A name `cookie:<name>` (see [`COOKIE_VARIANT`]) stands for that one
/// cookie in the request's `Cookie` fields: absent when none carries it,
/// else each of its values as sent (quotes kept), in their order.
pub fn variant_key(primary: &str, vary: &[String], request: &Headers) -> String {
    let mut key = primary.to_string();
    for name in vary {
        key.push('\n');
        key.push_str(name);
        if is_hop_by_hop(request, field_of(name)) {
            continue;
        }
        if let Some(cookie) = name.strip_prefix(COOKIE_VARIANT) {
            let mut values = (request.get_all("cookie").flat_map(cookie_pairs))
                .filter_map(|pair| cookie_named(pair, cookie))
                .peekable();
            if values.peek().is_some() {
                key.push('=');
                push_variant_value(&mut key, name, values);
            }
            continue;
        }
        if request.contains(name) {
            key.push('=');
            push_variant_value(&mut key, name, request.get_all(name));
        }
    }
    key
}

/// What starts the name a variant key gives one cookie (`cookie:lang`,
/// for `cache_vary`): no field name holds a `:`, so it is no field's.
pub const COOKIE_VARIANT: &str = "cookie:";

/// The request field a variant key's name is read from: the name itself,
/// or `cookie` for a cookie's (`cookie:lang`).
pub fn field_of(name: &str) -> &str {
    match name.starts_with(COOKIE_VARIANT) {
        true => "cookie",
        false => name,
    }
}

/// Whether `request` carries a field that `vary` names in another spelling
/// a CGI, WSGI or Rack backend reads as the same field: `Accept_Language`
/// for `accept-language` (both are its `HTTP_ACCEPT_LANGUAGE`, the one
/// that comes last winning), as [`read_alike`] compares them; with
/// `underscores_in_headers` on, such fields reach the backend. The
/// variant key holds the spelling `Vary` names alone (see
/// [`variant_key`]), so the answer to a request with both
/// (`Accept-Language: en` and `Accept_Language: <script>`) would be filed
/// under the `en` variant, for everyone who sends `en`.
///
/// Such a response is not stored (see `storable`), and that is enough: a
/// client without the other spelling is then never served what a
/// request with it brought. The request itself may still be answered from
/// a stored variant, the one its `Vary`-named spelling keys: what any
/// client sending that value gets, never another's, so nothing needs to
/// keep it from the cache. Keying on every spelling instead would need
/// the backend's rule for which one wins, which differs between them.
pub fn spells_a_varying_field_otherwise(request: &Headers, vary: &[String]) -> bool {
    !vary.is_empty()
        && request.iter().any(|(name, _)| {
            (vary.iter().map(|v| field_of(v)))
                .any(|v| read_alike(v.as_bytes(), name.as_bytes()) && !v.eq_ignore_ascii_case(name))
        })
}

/// Request fields that are lists by their definition (RFC 9110 §5.6.1's
/// `#rule`, whose recipients ignore empty elements and the whitespace
/// around commas, and whose lines combine into one: §5.3), those a
/// response may vary on. Another field's comma may be no separator (a
/// `User-Agent`'s `(KHTML, like Gecko)`, a cookie's value), nor its second
/// line a list element (a backend may read the first alone): its value
/// is kept as sent.
const LIST_VALUES: [&str; 9] = [
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "cache-control",
    "if-match",
    "if-none-match",
    "pragma",
    "prefer",
];

/// Fields whose values are case-insensitive throughout (RFC 9110 §12.5:
/// codings, charsets and language ranges, and the `q` parameter).
const CASE_INSENSITIVE_VALUES: [&str; 3] = ["accept-encoding", "accept-language", "accept-charset"];

/// The value of a varying field `name`, from the values of its lines.
/// Of a field in [`LIST_VALUES`], normalized as RFC 9111 §4.1 allows, so
/// that requests a backend must answer alike share one variant: the lines
/// combined, the list split at commas outside quoted strings, whitespace
/// around each element and empty elements dropped (RFC 9110 §5.6.1), and
/// the values of the `Accept-*` fields above lower-cased. Nothing else:
/// the order of elements stays, as some servers read it as a preference.
/// Of any other field, the lines as sent, each one apart (a `%0A`
/// between them, which no value holds). Bytes outside printable ASCII,
/// and `%`, are written `%XX`, so two values that differ otherwise never
/// make the same key.
fn push_variant_value<'a>(key: &mut String, name: &str, values: impl Iterator<Item = &'a [u8]>) {
    if !LIST_VALUES.contains(&name) {
        for (i, value) in values.enumerate() {
            if i > 0 {
                key.push_str("%0A");
            }
            push_escaped(key, value, false);
        }
        return;
    }
    let lower = CASE_INSENSITIVE_VALUES.contains(&name);
    // The lines combined before the list is split, as RFC 9110 §5.3 has a
    // recipient combine them: a quoted string may span two, and split
    // line by line it would not read as it does in the one-line spelling
    // the key is given in a snapshot.
    let lines: Vec<&[u8]> = values.collect();
    let combined;
    let value = match lines[..] {
        [one] => one,
        _ => {
            combined = lines.join(&b", "[..]);
            &combined[..]
        }
    };
    let mut first = true;
    for element in list_elements(value) {
        let element = element.trim_ascii();
        if element.is_empty() {
            continue;
        }
        if !std::mem::take(&mut first) {
            key.push(',');
        }
        push_escaped(key, element, lower);
    }
}

/// `bytes` in a key: `%` and bytes outside printable ASCII as `%XX`;
/// ASCII letters lower-cased if `lower`.
fn push_escaped(key: &mut String, bytes: &[u8], lower: bool) {
    for &b in bytes {
        let b = if lower { b.to_ascii_lowercase() } else { b };
        if b == b'%' || !(0x20..0x7f).contains(&b) {
            let _ = write!(key, "%{b:02X}");
        } else {
            key.push(b as char);
        }
    }
}

/// The variant part of a stored key (`\nname=value...`) as
/// [`variant_key`] spells it today.
fn respell_variant(variant: &str) -> String {
    let mut out = String::with_capacity(variant.len());
    // In the order `vary_names` gives today, each name once (older keys
    // followed the response's order); a name stands before its `=`.
    fn name(field: &str) -> &str {
        field.split('=').next().unwrap_or_default()
    }
    let mut fields: Vec<&str> = variant.split('\n').skip(1).collect();
    fields.sort_by(|a, b| name(a).cmp(name(b)));
    fields.dedup_by(|a, b| name(a) == name(b));
    for field in fields {
        out.push('\n');
        match field.split_once('=') {
            Some((name, value)) => {
                out.push_str(name);
                out.push('=');
                let value = decode_percent(value.as_bytes());
                push_variant_value(&mut out, name, std::iter::once(&value[..]));
            }
            None => out.push_str(field),
        }
    }
    out
}

/// `%XX` decoded; anything else kept.
pub fn decode_percent(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let escaped = (b[i] == b'%')
            .then(|| Some(hex_digit(*b.get(i + 1)?)? * 16 + hex_digit(*b.get(i + 2)?)?))
            .flatten();
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::policy::test_support::get;
    use crate::http::Version;

    // Keys with `cache_key_ignore_params` off, as the tests up to
    // `ignored_params_*` want them.
    fn primary_key(request: &RequestHead, scheme: &str) -> String {
        super::primary_key(request, scheme, &IgnoredParams::default())
    }

    fn primary_keys_of_uri(request: &RequestHead) -> [String; 2] {
        super::primary_keys_of_uri(request, &IgnoredParams::default())
    }

    fn keys_of_reference(request_keys: &[String; 2], reference: &str) -> Option<[String; 2]> {
        super::keys_of_reference(request_keys, reference, &IgnoredParams::default())
    }

    #[test]
    fn keys() {
        assert_eq!(primary_key(&get(&[]), "http"), "example.com/a?b");
        let mut h = Headers::new();
        h.push("Accept-Encoding", "gzip");
        assert_eq!(
            variant_key("k", &["accept-encoding".into()], &h),
            "k\naccept-encoding=gzip"
        );
    }

    #[test]
    fn location_and_content_location_name_keys_on_the_same_host_only() {
        let mut post = get(&[]);
        post.method = "POST".into();
        post.target = "/shop/cart/add?x=1".into();
        post.headers.set("Host", "Shop.Example:80");
        let keys = primary_keys_of_uri(&post);
        let named = |reference: &str| keys_of_reference(&keys, reference).map(|[http, _]| http);
        for (reference, key) in [
            ("/shop/cart", "shop.example/shop/cart"),
            (
                "http://shop.example/shop/cart#top",
                "shop.example/shop/cart",
            ),
            ("HTTPS://SHOP.example/", "shop.example/"),
            ("//shop.example:80?page=2", "shop.example/?page=2"),
            ("view", "shop.example/shop/cart/view"),
            ("../list?all", "shop.example/shop/list?all"),
            ("./a/./b/..", "shop.example/shop/cart/a/"),
            ("?x=2", "shop.example/shop/cart/add?x=2"),
            ("/%7Euser/%2f", "shop.example/~user/%2F"),
            ("/../../etc", "shop.example/etc"),
        ] {
            assert_eq!(named(reference).as_deref(), Some(key), "{reference}");
        }
        let [http, https] = keys_of_reference(&keys, "/shop/cart").unwrap();
        assert_eq!(https, format!("https://{http}"));
        // Another origin's pages, or none at all.
        for reference in [
            "http://other.example/shop/cart",
            "//shop.example:8080/",
            "http://user@shop.example/",
            "mailto:shop@example.com",
            "ftp://shop.example/",
            "",
            "#top",
        ] {
            assert_eq!(named(reference), None, "{reference}");
        }
    }

    #[test]
    fn a_reference_with_raw_characters_names_the_uri_a_browser_asks_for() {
        // PHP's header() and others send a Location as given: a raw `é`
        // or space, which a browser follows percent-encoded in UTF-8.
        let mut post = get(&[]);
        post.method = "POST".into();
        post.target = "/cart".into();
        let keys = primary_keys_of_uri(&post);
        for (reference, followed) in [
            ("/caf\u{e9}?q=\u{e9}t\u{e9}", "/caf%c3%a9?q=%C3%A9t%C3%A9"),
            ("http://example.com/a b", "/a%20b"),
            ("na\u{ef}ve", "/na%C3%AFve"),
        ] {
            let mut browser = get(&[]);
            browser.target = followed.into();
            let [named, _] = keys_of_reference(&keys, reference).unwrap();
            assert_eq!(named, primary_key(&browser, "http"), "{reference}");
        }
    }

    #[test]
    fn one_server_is_one_key_however_its_host_is_spelled() {
        let key_for = |host: &str| {
            let mut request = get(&[]);
            request.headers.set("Host", host);
            primary_key(&request, "http")
        };
        for same in [
            "example.com",
            "EXAMPLE.com:80",
            "example.com.",
            "example.com:0080",
        ] {
            assert_eq!(key_for(same), "example.com/a?b", "{same}");
        }
        assert_eq!(key_for("example.com:8080"), "example.com:8080/a?b");
        assert_eq!(key_for("example.com:08080"), "example.com:8080/a?b");
        assert_eq!(key_for("[::1]"), "[::1]/a?b");
        assert_eq!(key_for("[::1]:80"), "[::1]/a?b");
        assert_eq!(key_for("[::1]:81"), "[::1]:81/a?b");
        assert_eq!(key_for("10.0.0.1:80"), "10.0.0.1/a?b");
    }

    #[test]
    fn one_resource_is_one_key_however_its_path_is_percent_encoded() {
        let key_for = |target: &str| {
            let mut request = get(&[]);
            request.target = target.to_string();
            request.headers.set("Host", "h");
            primary_key(&request, "http")
        };
        assert_eq!(key_for("/a%2fb?q=%3d"), "h/a%2Fb?q=%3D");
        assert_eq!(key_for("/a%2Fb?q=%3D"), "h/a%2Fb?q=%3D");
        // Unreserved characters decoded; reserved ones stay encoded.
        assert_eq!(key_for("/%7Euser/%41%62%2d%5f"), "h/~user/Ab-_");
        // Dots stay encoded: no dot-segment appears that was not sent.
        assert_eq!(key_for("/a/%2e%2e/b"), "h/a/%2E%2E/b");
        assert_eq!(key_for("/a%2F%3F%25"), "h/a%2F%3F%25");
        // A lone `%` is written as the escape it stands for, so that no
        // escape appears that was not sent (`%%300` is not `%00`).
        assert_eq!(key_for("/100%"), "h/100%25");
        assert_eq!(key_for("/%g1%4"), "h/%25g1%254");
        assert_eq!(key_for("/%é%41"), "h/%25éA");
        assert_eq!(key_for("/%%300"), "h/%2500");
        // Encoded UTF-8 bytes stay encoded: only the hex case changes.
        assert_eq!(key_for("/%c3%a9"), "h/%C3%A9");
    }

    #[test]
    fn keys_stored_in_an_older_spelling_are_respelled_and_todays_are_kept() {
        assert_eq!(respell_key("h/a%2fb?q=%3d"), "h/a%2Fb?q=%3D");
        assert_eq!(respell_key("H.:80/%7Eu\naccept=%2f"), "h/~u\naccept=/");
        // Variant values as an older version spelled them: a list's in
        // one spelling, another field's as they were; the names in the
        // response's order, a repeated one again: sorted, each once.
        assert_eq!(
            respell_key("h/a\naccept-language=en, De\nx-a\nfoo=1, 2%09\nx-a"),
            "h/a\naccept-language=en,de\nfoo=1, 2%09\nx-a"
        );
        assert_eq!(respell_key("h"), "h");
        assert_eq!(respell_key(""), "");
        for target in ["/", "/a%2Fb?x=%25", "/100%25", "/%C3%A9/~u"] {
            for host in ["h", "[::1]:81", "10.0.0.1:8080", ""] {
                let mut request = get(&[]);
                request.target = target.to_string();
                request.headers.set("Host", host);
                let key = primary_key(&request, "http");
                assert_eq!(respell_key(&key), key);
                let secure = primary_key(&request, "https");
                assert_eq!(secure, format!("https://{key}"));
                assert_eq!(respell_key(&secure), secure);
                let varied = format!("{key}\nx=1");
                assert_eq!(respell_key(&varied), varied);
            }
        }
    }

    proptest::proptest! {
        /// A variant key is spelled as it will be read back from a
        /// snapshot, whatever bytes the request's field held.
        #[test]
        fn variant_keys_are_respelled_as_they_are(
            values in proptest::collection::vec(
                proptest::collection::vec(
                    proptest::prop_oneof![
                        proptest::sample::select(b" ,\"\\%\t=a".to_vec()),
                        proptest::num::u8::ANY,
                    ],
                    0..12,
                ),
                0..3,
            ),
            name in proptest::sample::select(vec!["accept-language", "x-a"]),
        ) {
            let mut h = Headers::new();
            for v in &values {
                h.push(name, v);
            }
            let key = variant_key("h/", &[name.to_string()], &h);
            proptest::prop_assert_eq!(respell_key(&key), key);
        }

        /// So is one keyed on a cookie (`cache_vary`), whatever its
        /// values, and one value never shares a key with another.
        #[test]
        fn cookie_variant_keys_are_respelled_as_they_are(
            values in proptest::collection::vec(
                proptest::collection::vec(
                    proptest::prop_oneof![
                        proptest::sample::select(b" ,\"\\%\t=;a".to_vec()),
                        proptest::num::u8::ANY,
                    ],
                    0..12,
                ),
                0..3,
            ),
        ) {
            let vary = ["cookie:lang".to_string()];
            let mut h = Headers::new();
            for v in &values {
                let mut field = b"x=1; lang=".to_vec();
                field.extend_from_slice(v);
                h.push("Cookie", &field[..]);
            }
            let key = variant_key("h/", &vary, &h);
            proptest::prop_assert_eq!(respell_key(&key), key.clone());
            let mut other = Headers::new();
            other.push("Cookie", "lang=\u{1}");
            proptest::prop_assert_ne!(variant_key("h/", &vary, &other), key);
        }

        /// Normalising a path twice changes nothing more, hex case never
        /// matters, and two paths share a key only if they decode to the
        /// same bytes (no two resources are ever confused).
        #[test]
        fn percent_normalisation_is_stable_and_only_merges_equivalents(
            path in "(/|[a-zA-Z0-9._~-]|%[0-9a-fA-F]{2}|%|\\?){0,24}",
        ) {
            let mut once = String::new();
            push_path(&mut once, &path);
            let mut twice = String::new();
            push_path(&mut twice, &once);
            proptest::prop_assert_eq!(&once, &twice);
            let mut flipped = String::new();
            push_path(&mut flipped, &flip_hex_case(&path));
            proptest::prop_assert_eq!(&once, &flipped);
            proptest::prop_assert_eq!(decoded(&once), decoded(&path));
        }

        /// Whatever a backend puts in `Location`, the keys it names are on
        /// the request's own host, a path after it, and never a panic.
        #[test]
        fn a_reference_never_names_another_host(
            reference in "(https?://|//|/|\\.\\.?/|[a-z]+:)?([a-zA-Z0-9.:@\\[\\]%?#/ é\\t-]){0,24}",
        ) {
            let mut post = RequestHead {
                method: "POST".into(),
                target: "/a/b?c".into(),
                version: Version::Http11,
                headers: Headers::new(),
            };
            post.headers.push("Host", "shop.example");
            let keys = primary_keys_of_uri(&post);
            if let Some([http, https]) = keys_of_reference(&keys, &reference) {
                proptest::prop_assert!(http.starts_with("shop.example/"), "{}", http);
                proptest::prop_assert_eq!(https, format!("https://{http}"));
            }
        }
    }

    /// `path` with the case of the hex digits of every complete %-escape
    /// swapped.
    fn flip_hex_case(path: &str) -> String {
        let b = path.as_bytes();
        let mut out = b.to_vec();
        let mut i = 0;
        while i + 2 < b.len() {
            if b[i] == b'%' && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit() {
                for k in [i + 1, i + 2] {
                    out[k] = if b[k].is_ascii_uppercase() {
                        b[k].to_ascii_lowercase()
                    } else {
                        b[k].to_ascii_uppercase()
                    };
                }
                i += 3;
            } else {
                i += 1;
            }
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// The bytes a path names, every valid %-escape decoded.
    fn decoded(path: &str) -> Vec<u8> {
        let b = path.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            let hex = |c: u8| char::from(c).to_digit(16);
            match (
                b[i],
                b.get(i + 1).and_then(|&c| hex(c)),
                b.get(i + 2).and_then(|&c| hex(c)),
            ) {
                (b'%', Some(hi), Some(lo)) => {
                    out.push((hi * 16 + lo) as u8);
                    i += 3;
                }
                (c, _, _) => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        out
    }

    /// The `http` key of `GET target` (on `Host: h`) with
    /// `cache_key_ignore_params = setting`.
    fn key_ignoring(setting: &str, target: &str) -> String {
        let mut request = get(&[]);
        request.target = target.to_string();
        request.headers.set("Host", "h");
        let ignored = IgnoredParams::parse(setting).unwrap();
        super::primary_key(&request, "http", &ignored)
    }

    const TRACKERS: &str = "utm_*, gclid, fbclid";

    #[test]
    fn ignored_params_are_left_out_of_the_key_wherever_they_stand() {
        let key = |target| key_ignoring(TRACKERS, target);
        for (target, expected) in [
            // At the start, in the middle, at the end.
            ("/p?utm_source=a&id=3", "h/p?id=3"),
            ("/p?id=3&utm_source=b", "h/p?id=3"),
            ("/p?a=1&gclid=x&b=2", "h/p?a=1&b=2"),
            (
                "/p?a=1&utm_source=x&utm_medium=y&b=2&fbclid=z",
                "h/p?a=1&b=2",
            ),
            // All of them: no query at all.
            ("/p?utm_source=x", "h/p"),
            ("/p?utm_source=x&gclid=y&fbclid", "h/p"),
            ("/p?", "h/p"),
            ("/p", "h/p"),
            // A name without `=`, and an empty value.
            ("/p?utm_source&id=3", "h/p?id=3"),
            ("/p?gclid=&id", "h/p?id"),
            // Empty pieces are no parameters.
            ("/p?a=1&&b=2", "h/p?a=1&b=2"),
            ("/p?&utm_source=x&&id=3&", "h/p?id=3"),
            ("/p?&&", "h/p"),
            // The order of the others is kept, not sorted.
            ("/p?b=2&utm_source=x&a=1", "h/p?b=2&a=1"),
            // Names are compared whole and with their case.
            (
                "/p?gclid2=1&xgclid=2&GCLID=3&utm=4",
                "h/p?gclid2=1&xgclid=2&GCLID=3&utm=4",
            ),
            // A name in a value, or after its `=`, is no name.
            ("/p?id=gclid&q=utm_source=1", "h/p?id=gclid&q=utm_source=1"),
            // The path is untouched, `&` in it included.
            ("/a&gclid=1/b?gclid=1", "h/a&gclid=1/b"),
            // A `?` in the query is part of the first name.
            ("/p??gclid=1&id=3", "h/p??gclid=1&id=3"),
        ] {
            assert_eq!(key(target), expected, "{target}");
        }
        // Two URLs differing only in a tracker share a key; another
        // parameter still makes one of its own.
        assert_eq!(key("/p?utm_source=a&id=3"), key("/p?id=3&utm_source=b"));
        assert_ne!(key("/p?id=3"), key("/p?id=4"));
        assert_ne!(key("/p?a=1&b=2"), key("/p?b=2&a=1"));
    }

    #[test]
    fn ignored_params_are_named_as_the_key_spells_them() {
        let key = |target| key_ignoring(TRACKERS, target);
        // An encoded unreserved character is the character in the key,
        // so `utm%5Fsource` names `utm_source`, and is left out with it.
        assert_eq!(key("/p?utm%5fsource=a&id=3"), "h/p?id=3");
        assert_eq!(key("/p?%67clid=a&id=%41"), "h/p?id=A");
        // Encoded reserved characters stay encoded: `%3D` ends no name,
        // `%26` splits no query, as a backend's parser reads them.
        assert_eq!(key("/p?gclid%3D1=2&id=3"), "h/p?gclid%3D1=2&id=3");
        assert_eq!(key("/p?id=3%26gclid=1"), "h/p?id=3%26gclid=1");
        // The rest keeps the key's spelling of percent-encodings.
        assert_eq!(key("/%7Ea?q=%3d&gclid=1&r=100%"), "h/~a?q=%3D&r=100%25");
        // A name written encoded in the setting is spelled as in a key.
        assert_eq!(
            key_ignoring("a%2fb, %7E*", "/p?a%2Fb=1&~x=2&id=3"),
            "h/p?id=3"
        );
        assert_eq!(key_ignoring("a%2fb", "/p?a/b=1"), "h/p?a/b=1");
    }

    #[test]
    fn an_ignored_param_holding_a_semicolon_stays_in_the_key() {
        let key = |target| key_ignoring(TRACKERS, target);
        for (target, expected) in [
            // A parser that also splits at `;` reads a `callback` here.
            (
                "/api?callback=render&utm_source=x;callback=alert(1)",
                "h/api?callback=render&utm_source=x;callback=alert(1)",
            ),
            // In the name too, and spelled as the key spells it.
            ("/p?utm_source;id=4=x&id=3", "h/p?utm_source;id=4=x&id=3"),
            ("/p?gclid=%7e;id=4", "h/p?gclid=~;id=4"),
            ("/p?utm_source=x;=4", "h/p?utm_source=x;=4"),
            // Ignored either way: left out.
            ("/p?utm_source=x;utm_medium=y&id=3", "h/p?id=3"),
            ("/p?utm_source;&id=3", "h/p?id=3"),
            ("/p?gclid=a;;%67clid=b", "h/p"),
            // An escaped `;` splits nothing anywhere: left out as before.
            ("/p?utm_source=x%3Bid=4&id=3", "h/p?id=3"),
            // A parameter not listed keeps its `;` as ever: `fbclid;` is
            // no `fbclid` to a parser that splits at `&` alone.
            ("/p?id=3;a=1&gclid=y", "h/p?id=3;a=1"),
            ("/p?fbclid;&id=3", "h/p?fbclid;&id=3"),
        ] {
            assert_eq!(key(target), expected, "{target}");
        }
        // A lone `*` still leaves out the whole query.
        assert_eq!(key_ignoring("*", "/p?a=1;b=2&c"), "h/p");
        // The prefix a PURGE names keeps it as the keys under it do.
        let kept = "/p?utm_source=x;id=4&id=3";
        let prefix = prefix(TRACKERS, "h", "/p?utm_source=x;id=4&*").unwrap();
        assert_eq!(prefix, "h/p?utm_source=x;id=4&");
        assert!(key(kept).starts_with(&prefix));
    }

    #[test]
    fn ignored_params_with_a_lone_star_leave_out_the_whole_query() {
        assert_eq!(key_ignoring("*", "/p?a=1&b&=c"), "h/p");
        assert_eq!(key_ignoring("*", "/p/q"), "h/p/q");
    }

    #[test]
    fn ignored_params_off_keep_every_key_as_it_was() {
        for (target, key) in [
            ("/p?utm_source=a&id=3", "h/p?utm_source=a&id=3"),
            ("/p?a=1&&b=2&", "h/p?a=1&&b=2&"),
            ("/p?", "h/p?"),
            ("/p?%67clid", "h/p?gclid"),
        ] {
            assert_eq!(key_ignoring("", target), key, "{target}");
        }
    }

    proptest::proptest! {
        /// Whatever the query, its key is the one of the query without
        /// the ignored parameters (but those in which a `;` sets off
        /// another one) and empty pieces, the others in their order, and
        /// reads back from a snapshot as it was written.
        #[test]
        fn ignored_params_leave_the_others_as_they_were(
            params in proptest::collection::vec(
                (
                    proptest::sample::select(
                        vec!["a", "id", "utm_source", "utm_", "utm", "gclid", "%67clid", "GCLID", ""],
                    ),
                    proptest::option::of("[a-z0-9=;]{0,3}"),
                ),
                0..6,
            ),
        ) {
            let pieces: Vec<String> = params
                .iter()
                .map(|(name, value)| match value {
                    Some(v) => format!("{name}={v}"),
                    None => name.to_string(),
                })
                .collect();
            let target = format!("/p?{}", pieces.join("&"));
            let kept: Vec<String> = params
                .iter()
                .zip(&pieces)
                .filter(|((name, value), piece)| {
                    let ignored = name.starts_with("utm_") || ["gclid", "%67clid"].contains(name);
                    // No value piece after a `;` names an ignored one.
                    let cloaks = value
                        .as_ref()
                        .is_some_and(|v| v.split(';').skip(1).any(|p| !p.is_empty()));
                    !piece.is_empty() && (!ignored || cloaks)
                })
                .map(|(_, piece)| piece.replace("%67", "g"))
                .collect();
            let expected = match kept.is_empty() {
                true => "h/p".to_string(),
                false => format!("h/p?{}", kept.join("&")),
            };
            let key = key_ignoring(TRACKERS, &target);
            proptest::prop_assert_eq!(&key, &expected, "{}", target);
            proptest::prop_assert_eq!(respell_key(&key), key);
        }
    }

    #[test]
    fn ignored_params_apply_to_every_key_a_request_makes() {
        let ignored = IgnoredParams::parse(TRACKERS).unwrap();
        let mut request = get(&[]);
        request.target = "http://Example.com/p?utm_source=a&id=3".into();
        // The `https://` key of a request a proxy in front got over TLS.
        assert_eq!(
            super::primary_key(&request, "https", &ignored),
            "https://example.com/p?id=3"
        );
        let keys = super::primary_keys_of_uri(&request, &ignored);
        assert_eq!(keys, ["example.com/p?id=3", "https://example.com/p?id=3"]);
        // What a Location or Content-Location names, relative or not, a
        // fragment dropped first.
        let named = |reference: &str| {
            super::keys_of_reference(&keys, reference, &ignored).map(|[http, _]| http)
        };
        for (reference, key) in [
            ("/q?utm_campaign=x", "example.com/q"),
            ("/q?id=1&gclid=x#top", "example.com/q?id=1"),
            ("http://example.com/q?fbclid=1&&id=2", "example.com/q?id=2"),
            ("?utm_source=b&id=3", "example.com/p?id=3"),
            ("q?utm_source=b", "example.com/q"),
        ] {
            assert_eq!(named(reference).as_deref(), Some(key), "{reference}");
        }
        // A key made with the setting is read back from a snapshot as it
        // was written.
        for target in ["/p?utm_source=a&id=3", "/%7Eu?q=%3d&gclid=1&r=100%"] {
            let key = key_ignoring(TRACKERS, target);
            assert_eq!(respell_key(&key), key);
        }
    }

    /// The `http` prefix `PURGE target` names on `Host: host` with
    /// `cache_key_ignore_params = setting`, checked against its `https`.
    fn prefix(setting: &str, host: &str, target: &str) -> Option<String> {
        let mut request = get(&[]);
        request.method = "PURGE".into();
        request.target = target.to_string();
        request.headers.set("Host", host);
        let ignored = IgnoredParams::parse(setting).unwrap();
        super::prefix_keys_of_uri(&request, &ignored).map(|keys| {
            let [http, https] = keys.prefixes;
            assert_eq!(https, format!("https://{http}"));
            http
        })
    }

    /// The bare `http` key `PURGE target` names besides its prefix, as
    /// [`prefix`] does.
    fn bare(setting: &str, target: &str) -> Option<String> {
        let mut request = get(&[]);
        request.method = "PURGE".into();
        request.target = target.to_string();
        request.headers.set("Host", "h");
        let ignored = IgnoredParams::parse(setting).unwrap();
        let [http, https] = super::prefix_keys_of_uri(&request, &ignored)?.bare?;
        assert_eq!(https, format!("https://{http}"));
        Some(http)
    }

    #[test]
    fn a_purge_target_ending_in_a_star_names_a_prefix_spelled_as_keys_are() {
        for (host, target, expected) in [
            ("shop.example", "/products/*", "shop.example/products/"),
            ("Shop.Example.:80", "/products/*", "shop.example/products/"),
            (
                "shop.example",
                "/%70roducts/%7e*",
                "shop.example/products/~",
            ),
            ("shop.example", "/a%2fb/*", "shop.example/a%2Fb/"),
            ("shop.example", "/*", "shop.example/"),
            ("shop.example:8080", "/*", "shop.example:8080/"),
            ("shop.example", "/products*", "shop.example/products"),
            ("shop.example", "/search?*", "shop.example/search?"),
            ("shop.example", "/search?q=*", "shop.example/search?q="),
            // An escape the `*` may have cut short is cut off: the
            // prefix takes `100%2F...` and a lone `%` alike.
            (
                "shop.example",
                "/search?q=100%*",
                "shop.example/search?q=100",
            ),
            (
                "shop.example",
                "/search?q=100%2*",
                "shop.example/search?q=100",
            ),
            ("shop.example", "/a%2F*", "shop.example/a%2F"),
            // `%z` begins no escape: a lone `%`, kept as keys spell it,
            // so the purge takes `100%zip` and not every `100...`.
            (
                "shop.example",
                "/search?q=100%z*",
                "shop.example/search?q=100%25z",
            ),
            ("shop.example", "/a**", "shop.example/a*"),
            ("admin", "http://Shop.example/p/*", "shop.example/p/"),
        ] {
            assert_eq!(
                prefix("", host, target).as_deref(),
                Some(expected),
                "{host} {target}"
            );
        }
        for target in ["/products/", "/a*/b", "/a%2A", "/p?q=*&r=1"] {
            assert_eq!(prefix("", "h", target), None, "{target}");
        }
        // Both readings of a cut escape are under it.
        let cut = prefix("", "h", "/search?q=100%*").unwrap();
        for target in ["/search?q=100%2Fa", "/search?q=100%", "/search?q=100%zz"] {
            assert!(key_ignoring("", target).starts_with(&cut), "{target}");
        }
    }

    #[test]
    fn a_prefix_matches_the_keys_under_it_however_spelled_and_no_other() {
        let key = |target| key_ignoring("", target);
        let products = prefix("", "H", "/products/*").unwrap();
        for under in [
            "/products/a",
            "/products/b?x=1",
            "/%70roducts/%41",
            "/products/",
            "http://h:80/products/c",
        ] {
            assert!(key(under).starts_with(&products), "{under}");
        }
        for other in ["/products", "/productsX", "/products?x=1", "/other", "/"] {
            assert!(!key(other).starts_with(&products), "{other}");
        }
        // Without its `/`, the prefix takes the path and its siblings.
        let wide = prefix("", "h", "/products*").unwrap();
        for under in ["/products", "/productsX", "/products?x=1", "/products/a"] {
            assert!(key(under).starts_with(&wide), "{under}");
        }
        // A host is a whole host: `h/` is no prefix of `hx/` or `h:8080/`.
        let site = prefix("", "h", "/*").unwrap();
        assert!(key("/any?thing").starts_with(&site));
        let mut other_host = get(&[]);
        for host in ["hx", "h:8080", "x.h"] {
            other_host.headers.set("Host", host);
            let key = primary_key(&other_host, "http");
            assert!(!key.starts_with(&site), "{key}");
        }
    }

    #[test]
    fn ignored_params_leave_a_prefix_and_so_may_a_name_the_star_cuts() {
        for (target, expected, bare_key) in [
            ("/p?utm_source=a&*", "h/p?", Some("h/p")),
            ("/p?id=3&utm_source=a&*", "h/p?id=3&", Some("h/p?id=3")),
            ("/p?utm_source=a&id=*", "h/p?id=", None),
            ("/p?&&id=3&&*", "h/p?id=3&", Some("h/p?id=3")),
            // A name the star cuts goes when an ignored one may begin
            // with it: the prefix widens to every query of `/p` rather
            // than leave `/p?gclid=1` (stored as `/p`) in place.
            ("/p?gclid*", "h/p?", Some("h/p")),
            ("/p?gcl*", "h/p?", Some("h/p")),
            ("/p?utm*", "h/p?", Some("h/p")),
            ("/p?utm_sou*", "h/p?", Some("h/p")),
            ("/p?id=3&gcl*", "h/p?id=3&", Some("h/p?id=3")),
            // One no ignored name begins with stays.
            ("/p?page*", "h/p?page", None),
            ("/p?id=3&gclid=x;ut*", "h/p?id=3&", Some("h/p?id=3")),
            ("/p?id=3&gclid=x;page*", "h/p?id=3&gclid=x;page", None),
            ("/p?gclid=*", "h/p?", Some("h/p")),
            ("/p?id=3&gclid=*", "h/p?id=3&", Some("h/p?id=3")),
            (
                "/p?id=3&gclid=x;callback=*",
                "h/p?id=3&gclid=x;callback=",
                None,
            ),
            ("/p/*", "h/p/", None),
            ("/p*", "h/p", None),
            ("/p?*", "h/p?", Some("h/p")),
        ] {
            assert_eq!(
                prefix(TRACKERS, "h", target).as_deref(),
                Some(expected),
                "{target}"
            );
            assert_eq!(bare(TRACKERS, target).as_deref(), bare_key, "{target}");
        }
        // Without the setting no key is cut short so: a prefix alone.
        assert_eq!(bare("", "/p?*"), None);
        // Every URL under the purge's target is keyed under its prefix
        // or is its bare key.
        for (target, url) in [
            ("/p?id=3&*", "/p?id=3&utm_source=x&page=2"),
            ("/p?id=3&*", "/p?id=3&utm_source=x"),
            ("/p?utm_source=a&*", "/p?utm_source=a&utm_medium=b"),
            ("/p?utm_source=a&*", "/p?utm_source=a&id=1"),
            ("/p?gclid=*", "/p?gclid=x"),
            ("/p?gclid=*", "/p?gclid=x&id=1"),
            ("/p?gclid=*", "/p?gclid=x;callback=y"),
            ("/p?*", "/p?fbclid=1"),
            ("/p?gclid*", "/p?gclid=1"),
            ("/p?gcl*", "/p?gclid=1&id=2"),
            ("/p?utm*", "/p?utm_source=1"),
            ("/p?id=3&gcl*", "/p?id=3&gclid=1&page=2"),
            ("/p?id=3&gclid=x;ut*", "/p?id=3&gclid=x;utm_source=1"),
            ("/p?page*", "/p?page=2&gclid=1"),
        ] {
            let key = key_ignoring(TRACKERS, url);
            let under = key.starts_with(&prefix(TRACKERS, "h", target).unwrap());
            assert!(
                under || bare(TRACKERS, target).as_deref() == Some(key.as_str()),
                "{target} {url}: {key}"
            );
        }
    }

    #[test]
    fn a_star_and_its_escape_are_two_keys() {
        // `*` is a reserved character: its escape is not decoded, so the
        // URL of a literal star and that of `%2A` are stored apart (a
        // `PURGE` of the `%2A` spelling drops both, see admin.rs).
        assert_eq!(key_ignoring("", "/a*"), "h/a*");
        assert_eq!(key_ignoring("", "/a%2a"), "h/a%2A");
    }

    #[test]
    fn variant_keys_tell_every_value_apart() {
        let vary = ["x-lang".to_string()];
        let key_of = |values: &[&[u8]]| {
            let mut h = Headers::new();
            for v in values {
                h.push("X-Lang", v);
            }
            variant_key("k", &vary, &h)
        };
        let keys = [
            key_of(&[]),
            key_of(&[b""]),
            key_of(&[b"\xff"]),
            key_of(&[b"\xfe"]),
            key_of(&["\u{fffd}".as_bytes()]),
            key_of(&[b"%FF"]),
            key_of(&[b"a\tb"]),
            key_of(&[b"a b"]),
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(key_of(&[]), "k\nx-lang");
        assert_eq!(key_of(&[b""]), "k\nx-lang=");
        assert_eq!(key_of(&[b"caf\xc3\xa9 %"]), "k\nx-lang=caf%C3%A9 %25");
        // Several lines are one list (RFC 9110 §5.3), of a field known to
        // be one; another's stay apart.
        assert_ne!(key_of(&[b"a", b"b"]), key_of(&[b"a, b"]));
        assert_eq!(key_of(&[b"a", b"b"]), "k\nx-lang=a%0Ab");
        assert_eq!(
            keyed("Accept-Language", &["a", "b"]),
            keyed("Accept-Language", &["a, b"])
        );
    }

    #[test]
    fn a_varying_field_spelled_otherwise_is_found_in_either_direction() {
        let otherwise = |vary: &[&str], fields: &[&str]| {
            let vary: Vec<String> = vary.iter().map(|v| v.to_string()).collect();
            let mut h = Headers::new();
            for name in fields {
                h.push(*name, "x");
            }
            super::spells_a_varying_field_otherwise(&h, &vary)
        };
        let lang = ["accept-language"];
        assert!(otherwise(&lang, &["Accept-Language", "Accept_Language"]));
        assert!(otherwise(&lang, &["ACCEPT_language"]));
        assert!(otherwise(
            &["origin", "accept-language"],
            &["Origin", "accept_Language"]
        ));
        // The spelling Vary names is the one the key holds, in any case.
        assert!(!otherwise(&lang, &["ACCEPT-LANGUAGE", "Accept-Encoding"]));
        assert!(!otherwise(&lang, &["Accept_Encoding", "X_Accept_Language"]));
        assert!(!otherwise(&[], &["Accept_Language"]));
        // A name Vary spells with `_` is read by the backend in `-` too.
        assert!(otherwise(&["x_lang"], &["X-Lang"]));
        assert!(!otherwise(&["x_lang"], &["X_LANG"]));
    }

    fn keyed(name: &str, values: &[&str]) -> String {
        let mut h = Headers::new();
        for v in values {
            h.push(name, v);
        }
        variant_key("k", &[name.to_ascii_lowercase()], &h)
    }

    #[test]
    fn variant_keys_merge_only_the_spellings_of_one_list() {
        let one = keyed("Accept", &["1,2"]);
        assert_eq!(one, "k\naccept=1,2");
        for same in [
            &[" 1, 2 "][..],
            &["1", "2"],
            &["1 ,\t2"],
            &["1, ,2,"],
            &[",1", "", "2"],
        ] {
            assert_eq!(keyed("Accept", same), one, "{same:?}");
        }
        for other in [
            &["2,1"][..],
            &["1 2"],
            &["12"],
            &["1"],
            &["1,2,3"],
            &["\"1,2\""],
        ] {
            assert_ne!(keyed("Accept", other), one, "{other:?}");
        }
        // A quoted string that spans two lines reads as in one line.
        assert_eq!(
            keyed("Accept-Language", &["\"", "\", \""]),
            keyed("Accept-Language", &["\", \", \""])
        );
        // Inside a quoted string nothing is normalized.
        assert_ne!(
            keyed("Accept", &["\"a, b\""]),
            keyed("Accept", &["\"a,b\""])
        );
        // Case, only where the field's values are case-insensitive.
        let lang = keyed("Accept-Language", &["en, de;q=0.5"]);
        assert_eq!(keyed("Accept-Language", &["EN , De;Q=0.5"]), lang);
        assert_ne!(keyed("Accept-Language", &["de;q=0.5, en"]), lang);
        assert_eq!(
            keyed("Accept-Encoding", &["GZIP", "br"]),
            keyed("Accept-Encoding", &["gzip,br"])
        );
        assert_ne!(keyed("X-Lang", &["EN"]), keyed("X-Lang", &["en"]));
        // An empty field is not an absent one.
        assert_ne!(keyed("Accept", &[" "]), keyed("Accept", &[]));
    }

    #[test]
    fn a_cookie_variant_is_that_cookie_s_values_alone() {
        let vary = ["accept-encoding".to_string(), "cookie:lang".to_string()];
        let key_of = |cookies: &[&str]| {
            let mut h = Headers::new();
            h.push("Accept-Encoding", "gzip");
            for c in cookies {
                h.push("Cookie", *c);
            }
            variant_key("k", &vary, &h)
        };
        assert_eq!(
            key_of(&["sid=1; lang=fr; _ga=x"]),
            "k\naccept-encoding=gzip\ncookie:lang=fr"
        );
        // Other cookies, and their order, are not the variant's.
        assert_eq!(key_of(&["lang=fr"]), key_of(&["_ga=y", "lang=fr; sid=2"]));
        // Absent is a variant of its own, apart from an empty value; the
        // name is compared as sent.
        assert_eq!(key_of(&[]), "k\naccept-encoding=gzip\ncookie:lang");
        assert_eq!(key_of(&["Lang=fr", "xlang=fr"]), key_of(&[]));
        assert_ne!(key_of(&["lang="]), key_of(&[]));
        // Each value as sent, in order, quotes kept.
        assert_eq!(
            key_of(&["lang=fr", "lang=\"de\""]),
            "k\naccept-encoding=gzip\ncookie:lang=fr%0A\"de\""
        );
        assert_ne!(key_of(&["lang=fr; lang=de"]), key_of(&["lang=de; lang=fr"]));
        // A client's Connection cannot make the proxy drop its Cookie
        // (see `is_protected`): the backend gets it, and the key holds it.
        let mut h = Headers::new();
        h.push("Accept-Encoding", "gzip");
        h.push("Cookie", "lang=fr");
        h.push("Connection", "Cookie");
        assert_eq!(variant_key("k", &vary, &h), key_of(&["lang=fr"]));
        assert_eq!(field_of("cookie:lang"), "cookie");
        assert_eq!(field_of("accept-encoding"), "accept-encoding");
    }

    #[test]
    fn variant_keys_keep_a_field_that_is_no_list_as_sent() {
        let ua = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 \
                  (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
        let one = keyed("User-Agent", &[ua]);
        assert_eq!(keyed("User-Agent", &[ua]), one);
        let (first, second) = ua.split_once(", ").unwrap();
        for other in [
            &[&*ua.replace(", ", ",")][..],
            &[&*ua.replace(", ", " ,\t")],
            &[&*format!("{ua},")],
            &[&*format!("{ua}, ")],
            &[&*format!(",{ua}")],
            &[first, second],
        ] {
            assert_ne!(keyed("User-Agent", other), one, "{other:?}");
        }
        // Nor are the lines of another field combined, or its case changed.
        assert_ne!(
            keyed("Cookie", &["a=1, b=2"]),
            keyed("Cookie", &["a=1,b=2"])
        );
        assert_ne!(keyed("X-A", &["1", "2"]), keyed("X-A", &["1, 2"]));
        assert_ne!(keyed("X-A", &["1", "2"]), keyed("X-A", &["1,2"]));
        assert_ne!(keyed("X-A", &["a"]), keyed("X-A", &["A"]));
        // A line may not pass for two (no parsed value holds a line feed).
        assert_ne!(keyed("X-A", &["1", "2"]), keyed("X-A", &["1%0A2"]));
    }
}
