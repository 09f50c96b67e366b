//! `sub_filter` (nginx's `sub_filter`): strings replaced in the bodies of
//! the responses of the `sub_filter_types` as they are relayed, for an
//! application that writes its own address into its pages
//! (`'http://app.internal:8080/' 'https://www.example.com/'`), or a
//! snippet put before `</head>`. A string is found in any case of its
//! letters, as nginx finds it; the earliest match in the body goes first,
//! and of two that begin at one byte, the rule written first. With
//! `sub_filter_once` (nginx's default), each rule replaces its first match
//! alone.
//!
//! A body read whole is rewritten whole ([`Substitution::whole`]). One
//! that streams comes in pieces: what could begin a string cut between
//! two pieces waits for the next one (at most the longest string less a
//! byte), and what a piece makes is handed on in slices of at most
//! [`SLICE`] bytes (and a replacement), however much a replacement makes
//! of it.

use crate::config::FieldFamily;
use crate::field_value::{Facts, FieldValue};
use crate::gzip::MediaTypes;
use crate::http::Headers;
use aho_corasick::{AhoCorasick, Input, MatchKind};
use std::sync::Arc;

/// Most rules one setting lists.
const MAX_RULES: usize = 32;
/// The longest string to find: nginx's limit too. It is what a piece's
/// end may hold back.
const MAX_FROM: usize = 255;
/// The longest replacement, as written.
const MAX_TO: usize = 4096;
/// The most bytes handed on at once, but for one replacement more.
pub const SLICE: usize = 64 * 1024;

/// The rules of `sub_filter`, in the order written; empty when it is off.
#[derive(Clone, Debug, Default)]
pub struct SubFilter {
    rules: Arc<[Rule]>,
    /// Finds every rule's string; `None` without rules.
    finder: Option<AhoCorasick>,
    /// The longest string to find.
    longest: usize,
    /// The replacements, when none names a variable: the same for every
    /// request, made once.
    fixed: Option<Rendered>,
}

#[derive(Debug)]
struct Rule {
    from: Box<[u8]>,
    to: FieldValue,
}

/// The rules' replacements, their variables' values made for one
/// request, in the order of the rules; shared by the bodies rewritten
/// for it.
#[derive(Clone, Debug, Default)]
pub struct Rendered(Arc<[Box<[u8]>]>);

impl SubFilter {
    /// Comma separated rules, each two strings, `<find> <replacement>`,
    /// quoted (`'...'` or `"..."`) when they hold a space, a comma or a
    /// quote; `\` escapes the next character in either (`\n`, `\r`, `\t`,
    /// `\xHH` for an ASCII byte, and any other character as itself). The
    /// replacement may name the variables a `location_rewrite` may.
    pub fn parse(v: &str) -> Result<SubFilter, String> {
        let split = split_rules(v)?;
        // Counted first: each rule is compared with those before it.
        if split.len() > MAX_RULES {
            return Err(format!("{} rules; at most {MAX_RULES}", split.len()));
        }
        let mut rules: Vec<Rule> = Vec::new();
        for words in split {
            let [from, to] = <[String; 2]>::try_from(words).map_err(|words| {
                format!(
                    "`{}`: a rule is two strings, `<find> <replacement>` (`'</head>' \
                     '<script src=\"/a.js\"></script></head>'`), rules separated by commas",
                    words.join(" ")
                )
            })?;
            if from.is_empty() || from.len() > MAX_FROM {
                return Err(format!(
                    "`{from}`: a string to find is 1 to {MAX_FROM} bytes long"
                ));
            }
            if to.len() > MAX_TO {
                return Err(format!(
                    "a replacement of {} bytes; at most {MAX_TO}",
                    to.len()
                ));
            }
            if let Some(first) =
                (rules.iter()).find(|r| r.from.eq_ignore_ascii_case(from.as_bytes()))
            {
                return Err(format!(
                    "`{from}` is found by an earlier rule already (`{}`): letters are found in \
                     any case",
                    String::from_utf8_lossy(&first.from)
                ));
            }
            let to = FieldValue::parse(&to, FieldFamily::Request)
                .and_then(crate::location_rewrite::same_for_a_url)
                .map_err(|e| format!("`{to}`: {e}"))?;
            rules.push(Rule {
                from: from.into_bytes().into(),
                to,
            });
        }
        let finder = finder(rules.iter().map(|r| &r.from[..]))
            .map_err(|e| format!("the strings to find: {e}"))?;
        let texts = rules
            .iter()
            .map(|r| r.to.text().map(|t| t.as_bytes().into()));
        Ok(SubFilter {
            longest: (rules.iter()).map(|r| r.from.len()).max().unwrap_or(0),
            fixed: texts.collect::<Option<_>>().map(Rendered),
            rules: rules.into(),
            finder,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The replacements for the request `facts` tells of: variables'
    /// values as for a `location_rewrite` (percent-encoded where a URL
    /// cannot hold them).
    pub fn for_request(&self, facts: &Facts<'_>) -> Rendered {
        if let Some(fixed) = &self.fixed {
            return fixed.clone();
        }
        let render = |rule: &Rule| {
            let mut out = Vec::new();
            rule.to.render_url(facts, &mut out);
            out.into()
        };
        Rendered(self.rules.iter().map(render).collect())
    }

    /// The replacements when none names a variable, as
    /// [`SubFilter::for_request`] renders them for any request; `None`
    /// when one does. For tests and fuzzing, which have no request.
    pub fn rendered_without_request(&self) -> Option<Rendered> {
        self.fixed.clone()
    }

    /// The strings to find, as decoded, in the order of the rules: for
    /// tests and fuzzing, which check what is replaced.
    pub fn strings(&self) -> impl Iterator<Item = &[u8]> {
        self.rules.iter().map(|r| &r.from[..])
    }

    /// What rewrites one body, with the replacements `rendered` for its
    /// request; `once`: each rule replaces its first match alone.
    pub fn substitution(&self, rendered: &Rendered, once: bool) -> Substitution {
        Substitution {
            rules: self.rules.clone(),
            finder: self.finder.clone(),
            finds: (0..self.rules.len()).collect(),
            to: rendered.clone(),
            once,
            used: vec![false; self.rules.len()],
            longest: self.longest,
            pending: Vec::new(),
            at: 0,
        }
    }
}

/// Whether a response's body is rewritten: one of the `types`, not coded
/// (a compressed body holds none of the strings as written) nor marked
/// `no-transform`, and not a part of a body (a `206`: a string may be cut
/// at its ends, and its `Content-Range` counts the bytes as sent).
pub fn rewrites(types: &MediaTypes, status: u16, headers: &Headers) -> bool {
    !matches!(status, 100..=199 | 204 | 206 | 304)
        && (headers.get("content-type")).is_some_and(|t| types.lists(t))
        && crate::gzip::may_transform(headers)
}

/// Whether a `304` answering `request` validates a body rewritten: then
/// its validators are made as the rewritten body's were (see
/// [`edit_validators`]), or they would replace those of the stored or
/// cached body. One of a listed type does; most say no type, and one
/// that does not is taken for one when the request asked after the weak
/// `ETag` a rewritten body was given (`sub_filter_last_modified`) and the
/// `304` names it strong, or when rewritten bodies keep no validator at
/// all (editing it then takes nothing a client could keep).
pub fn validates_rewritten(
    types: &MediaTypes,
    response: &Headers,
    request: &Headers,
    keep_last_modified: bool,
) -> bool {
    if !crate::gzip::may_transform(response) {
        return false;
    }
    match response.get("content-type") {
        Some(t) => types.lists(t),
        None => !keep_last_modified || asked_after_it_weakened(request, response),
    }
}

/// Whether `request`'s `If-None-Match` names the `ETag` of `response`
/// made weak.
fn asked_after_it_weakened(request: &Headers, response: &Headers) -> bool {
    let Some(tag) = response.get("etag").map(<[u8]>::trim_ascii) else {
        return false;
    };
    let weakened = [b"W/", tag].concat();
    (request.get_all("if-none-match"))
        .flat_map(|v| v.split(|&b| b == b','))
        .any(|asked| asked.trim_ascii() == weakened)
}

/// A rewritten body's validators, as nginx makes them: the backend's
/// `ETag` and `Last-Modified` removed; or, with `keep_last_modified`
/// (`sub_filter_last_modified`), `Last-Modified` kept and the `ETag`
/// weakened (the body is no longer byte for byte the one it named).
/// Ranges of it are not the backend's to serve: `Accept-Ranges` goes.
pub fn edit_validators(headers: &mut Headers, keep_last_modified: bool) {
    headers.remove("accept-ranges");
    if !keep_last_modified {
        headers.remove("etag");
        headers.remove("last-modified");
        return;
    }
    let strong = (headers.get("etag")).filter(|tag| !tag.trim_ascii_start().starts_with(b"W/"));
    if let Some(tag) = strong.map(|tag| [b"W/", tag.trim_ascii()].concat()) {
        headers.set("ETag", tag);
    }
}

/// The finder of `strings`, in any case, the first written winning where
/// two begin at one byte; `None` for no strings.
fn finder<'a>(
    strings: impl Iterator<Item = &'a [u8]> + Clone,
) -> Result<Option<AhoCorasick>, aho_corasick::BuildError> {
    if strings.clone().next().is_none() {
        return Ok(None);
    }
    (AhoCorasick::builder())
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::LeftmostFirst)
        .build(strings)
        .map(Some)
}

impl Rendered {
    /// The replacements, in the order of the rules.
    pub fn texts(&self) -> impl Iterator<Item = &[u8]> {
        self.0.iter().map(|t| &t[..])
    }
}

/// One body being rewritten: fed its pieces as they come
/// ([`Substitution::feed`]), and drained of what is made
/// ([`Substitution::drain`]); or a body read whole, rewritten whole
/// ([`Substitution::whole`]).
#[derive(Clone)]
pub struct Substitution {
    rules: Arc<[Rule]>,
    /// Finds the strings of the rules still in use; `None` once none is.
    finder: Option<AhoCorasick>,
    /// The rule each of the finder's strings is.
    finds: Vec<usize>,
    to: Rendered,
    once: bool,
    /// The rules that replaced their match, with `once`.
    used: Vec<bool>,
    longest: usize,
    /// Fed and not handed on yet, from `at`.
    pending: Vec<u8>,
    at: usize,
}

impl Substitution {
    /// The body's next bytes.
    pub fn feed(&mut self, piece: &[u8]) {
        self.pending.extend_from_slice(piece);
    }

    /// Replaces `out` with the next bytes of the rewritten body: at most
    /// [`SLICE`] and a replacement, and none that may still begin a match
    /// with what is fed next, unless `ended` (the body has all been fed). Returns
    /// whether more is ready, to be drained again before the next feed.
    pub fn drain(&mut self, out: &mut Vec<u8>, ended: bool) -> bool {
        out.clear();
        loop {
            let end = self.pending.len();
            let found = (self.finder.as_ref())
                .and_then(|f| f.find(Input::new(&self.pending).span(self.at..end)));
            // A match that could be the start of a longer one, or of one
            // of an earlier rule, waits for what comes next: not one
            // that ends before the last `longest` bytes.
            let settled = found.filter(|m| ended || m.start() + self.longest <= end);
            let until = match (&settled, &self.finder) {
                (Some(m), _) => m.start(),
                (None, Some(_)) if !ended => end.saturating_sub(self.longest - 1).max(self.at),
                (None, _) => end,
            };
            // What comes before the match (or the end) goes as it came,
            // a slice's worth at a time: the match is found again.
            let room = SLICE - out.len();
            if until - self.at > room {
                out.extend_from_slice(&self.pending[self.at..self.at + room]);
                self.at += room;
                return true;
            }
            out.extend_from_slice(&self.pending[self.at..until]);
            self.at = until;
            let Some(m) = settled else {
                self.compact();
                return false;
            };
            let rule = self.finds[m.pattern().as_usize()];
            // Made for this filter's rules, one each: a missing one
            // would be empty.
            out.extend_from_slice(self.to.0.get(rule).map_or(&[][..], |to| to));
            self.at = m.end();
            if self.once {
                self.used[rule] = true;
                self.find_unused();
            }
            if out.len() >= SLICE {
                return true;
            }
        }
    }

    /// `body`, the whole of one, as it is rewritten, when that is at most
    /// `limit` bytes; `None` when longer. Leaves this one as it was, for
    /// a body that is to stream then.
    pub fn whole(&self, body: &[u8], limit: u64) -> Option<Vec<u8>> {
        let mut rewriting = self.clone();
        rewriting.feed(body);
        let (mut made, mut out) = (Vec::with_capacity(body.len()), Vec::new());
        loop {
            let more = rewriting.drain(&mut out, true);
            if (made.len() + out.len()) as u64 > limit {
                return None;
            }
            made.extend_from_slice(&out);
            if !more {
                return Some(made);
            }
        }
    }

    /// Feeds `piece` and hands `sink` every slice it makes (`ended`: the
    /// body's last piece), for a caller with nothing to do between them.
    pub fn pass(&mut self, piece: &[u8], ended: bool, mut sink: impl FnMut(&[u8])) {
        self.feed(piece);
        let mut out = Vec::new();
        loop {
            let more = self.drain(&mut out, ended);
            if !out.is_empty() {
                sink(&out);
            }
            if !more {
                return;
            }
        }
    }

    /// The finder made again of the rules not used: the one in use
    /// would still find a used rule's string where another rule's
    /// begins too.
    fn find_unused(&mut self) {
        self.finds = (0..self.rules.len()).filter(|&i| !self.used[i]).collect();
        let strings = self.finds.iter().map(|&i| &self.rules[i].from[..]);
        // Built once already, of these strings and more: it cannot fail,
        // but a body left as it is would be the harmless way if it did.
        self.finder = finder(strings).ok().flatten();
    }

    /// Forgets what was handed on.
    fn compact(&mut self) {
        self.pending.drain(..self.at);
        self.at = 0;
    }
}

/// `v`'s rules, each its strings, decoded.
fn split_rules(v: &str) -> Result<Vec<Vec<String>>, String> {
    let mut rules = Vec::new();
    let mut words = Vec::new();
    let mut chars = v.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            ',' => {
                chars.next();
                rules.push(std::mem::take(&mut words));
            }
            c if c.is_whitespace() => {
                chars.next();
            }
            '\'' | '"' => {
                chars.next();
                let mut word = String::new();
                loop {
                    match chars.next() {
                        None => return Err(format!("`{v}`: a quote ({c}) is not closed")),
                        Some(q) if q == c => break,
                        Some('\\') => word.push(escaped(&mut chars, v)?),
                        Some(other) => word.push(other),
                    }
                }
                words.push(word);
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c == ',' || c.is_whitespace() {
                        break;
                    }
                    chars.next();
                    match c {
                        '\\' => word.push(escaped(&mut chars, v)?),
                        _ => word.push(c),
                    }
                }
                words.push(word);
            }
        }
    }
    if !words.is_empty() || !rules.is_empty() {
        rules.push(words);
    }
    Ok(rules)
}

/// The character a `\` escapes, read from `chars`.
fn escaped(chars: &mut impl Iterator<Item = char>, v: &str) -> Result<char, String> {
    let bad = || format!("`{v}`: `\\x` takes two hexadecimal digits, of an ASCII byte (00 to 7f)");
    match chars.next() {
        Some('n') => Ok('\n'),
        Some('r') => Ok('\r'),
        Some('t') => Ok('\t'),
        Some('x') => {
            let digits: String = chars.take(2).collect();
            let byte = u8::from_str_radix(&digits, 16).map_err(|_| bad())?;
            match digits.len() == 2 && byte.is_ascii() {
                true => Ok(char::from(byte)),
                false => Err(bad()),
            }
        }
        Some(c) => Ok(c),
        None => Err(format!("`{v}`: a `\\` ends it")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rules of `v`, their replacements naming no variable.
    fn rules(v: &str) -> (SubFilter, Rendered) {
        let filter = SubFilter::parse(v).unwrap();
        let rendered = filter.rendered_without_request().unwrap();
        (filter, rendered)
    }

    /// `body` rewritten, fed in pieces of `size` bytes.
    fn rewritten(v: &str, once: bool, body: &[u8], size: usize) -> Vec<u8> {
        let (filter, rendered) = rules(v);
        let mut sub = filter.substitution(&rendered, once);
        let mut made = Vec::new();
        let pieces: Vec<&[u8]> = body.chunks(size.max(1)).collect();
        for (i, piece) in pieces.iter().enumerate() {
            sub.pass(piece, i + 1 == pieces.len(), |out| {
                made.extend_from_slice(out)
            });
        }
        if pieces.is_empty() {
            sub.pass(b"", true, |out| made.extend_from_slice(out));
        }
        made
    }

    #[test]
    fn strings_are_replaced_in_any_case_whatever_the_pieces() {
        let body = b"<a href=\"http://APP.internal/x\">http://app.internal/y</a></HEAD>";
        let v =
            "http://app.internal/ https://www.example.com/, '</head>' '<script></script></head>'";
        for size in [1, 2, 3, 7, 19, 64, 1000] {
            assert_eq!(
                String::from_utf8(rewritten(v, false, body, size)).unwrap(),
                "<a href=\"https://www.example.com/x\">https://www.example.com/y</a>\
                 <script></script></head>",
                "pieces of {size}"
            );
        }
    }

    #[test]
    fn once_replaces_each_rules_first_match_alone() {
        let body = b"ab ab cd cd ab";
        for size in [1, 2, 5, 100] {
            let made = rewritten("ab X, cd Y", true, body, size);
            assert_eq!(made, b"X ab Y cd ab", "pieces of {size}");
            let made = rewritten("ab X, cd Y", false, body, size);
            assert_eq!(made, b"X X Y Y X", "pieces of {size}");
        }
    }

    /// Where two rules' strings begin at one byte, the first written
    /// wins; once it is used, the other is found there.
    #[test]
    fn the_earliest_match_and_then_the_first_rule_win() {
        assert_eq!(rewritten("abc 1, ab 2", false, b"xabcxabx", 2), b"x1x2x");
        assert_eq!(rewritten("ab 2, abc 1", false, b"xabcxabx", 2), b"x2cx2x");
        assert_eq!(rewritten("bcd 1, ab 2", false, b"abcd", 1), b"2cd");
        assert_eq!(rewritten("abc 1, ab 2", true, b"abcab", 1), b"12");
    }

    /// A replacement that holds its own string is not searched again,
    /// and a string cut at the body's end is left as it came.
    #[test]
    fn what_is_made_is_not_searched_and_an_unfinished_string_is_kept() {
        assert_eq!(rewritten("a aa", false, b"aaa", 1), b"aaaaaa");
        assert_eq!(rewritten("'</body>' x", false, b"text</bo", 3), b"text</bo");
        assert_eq!(rewritten("a b", false, b"", 3), b"");
    }

    /// However much a replacement makes of a piece, it is handed on in
    /// slices of about [`SLICE`] bytes.
    #[test]
    fn a_piece_that_grows_is_handed_on_in_slices() {
        let to = "y".repeat(MAX_TO);
        let (filter, rendered) = rules(&format!("x {to}"));
        let mut sub = filter.substitution(&rendered, false);
        let mut slices = Vec::new();
        sub.pass(&[b'x'; 100], true, |out| slices.push(out.len()));
        assert_eq!(slices.iter().sum::<usize>(), 100 * MAX_TO);
        // 400 KiB in seven slices of 64 KiB, the last shorter.
        assert_eq!(slices.len(), 7, "{slices:?}");
        assert!(slices.iter().all(|&n| n <= SLICE + MAX_TO), "{slices:?}");
        // A long run of text after most of a slice is cut too.
        let body = [&[b'x'; 15][..], &[b'a'; 10_000], b"x"].concat();
        let mut slices = Vec::new();
        sub.pass(&body, true, |out| slices.push(out.len()));
        assert_eq!(slices.iter().sum::<usize>(), 16 * MAX_TO + 10_000);
        assert!(slices.iter().all(|&n| n <= SLICE + MAX_TO), "{slices:?}");
    }

    /// A piece of several slices, matches all through it, is rewritten
    /// whole: each slice ends where the text before a match does, never
    /// past it (where the match would go as it came).
    #[test]
    fn a_piece_of_many_slices_has_every_match_replaced() {
        let mut body = vec![b'.'; 3 * SLICE];
        for at in (0..body.len() - 2).step_by(1000) {
            body[at..at + 2].copy_from_slice(b"ab");
        }
        let wanted = String::from_utf8(body.clone())
            .unwrap()
            .replace("ab", "XYZ");
        for size in [SLICE - 1, body.len()] {
            let made = String::from_utf8(rewritten("ab XYZ", false, &body, size)).unwrap();
            assert!(
                made == wanted,
                "pieces of {size}: the rewritten body differs"
            );
        }
    }

    /// A body read whole is rewritten whole while what it makes fits,
    /// and the rewriting it was asked of stays as it was.
    #[test]
    fn a_whole_body_is_rewritten_if_it_fits() {
        let (filter, rendered) = rules("ab XYZ");
        let sub = filter.substitution(&rendered, true);
        assert_eq!(sub.whole(b"ab ab", 6).as_deref(), Some(&b"XYZ ab"[..]));
        assert_eq!(sub.whole(b"ab ab", 5), None);
        // Still unused: the first match is replaced again.
        assert_eq!(sub.whole(b"xab", 100).as_deref(), Some(&b"xXYZ"[..]));
    }

    /// Of a piece that matches nothing, all goes on but what could begin
    /// a string with what comes next: the longest less a byte.
    #[test]
    fn a_piece_s_end_is_held_back_by_the_longest_string_less_a_byte() {
        let (filter, rendered) = rules("xyz q, x r");
        let mut sub = filter.substitution(&rendered, false);
        let mut out = Vec::new();
        sub.feed(b"abcdef");
        assert!(!sub.drain(&mut out, false));
        assert_eq!(out, b"abcd");
        assert!(!sub.drain(&mut out, true));
        assert_eq!(out, b"ef");
        // A string of one byte is whole when it comes: nothing waits.
        let (filter, rendered) = rules("x y");
        let mut sub = filter.substitution(&rendered, false);
        sub.feed(b"abc");
        assert!(!sub.drain(&mut out, false));
        assert_eq!(out, b"abc");
    }

    /// What was handed on is forgotten: a long body that matches
    /// nothing keeps no more than it holds back.
    #[test]
    fn what_went_on_is_not_kept() {
        let (filter, rendered) = rules("'</head>' x");
        let mut sub = filter.substitution(&rendered, false);
        let mut made = 0;
        for _ in 0..1000 {
            sub.pass(&[b'.'; 100], false, |out| made += out.len());
        }
        assert_eq!(made, 100 * 1000 - ("</head>".len() - 1));
        assert_eq!((sub.pending.len(), sub.at), ("</head>".len() - 1, 0));
    }

    /// A replacement's variables take the request's values; one without
    /// any is as written.
    #[test]
    fn replacements_are_made_for_each_request() {
        let filter = SubFilter::parse("'http://app/' '$scheme://$host/', a b").unwrap();
        let mut headers = Headers::default();
        headers.push("Host", "www.example.test");
        let head = crate::http::RequestHead {
            method: "GET".into(),
            target: "/".into(),
            version: crate::http::Version::Http11,
            headers,
        };
        let rendered = filter.for_request(&Facts::plain(&head));
        let to: Vec<&[u8]> = rendered.0.iter().map(|t| &t[..]).collect();
        assert_eq!(to, [&b"http://www.example.test/"[..], b"b"]);
    }

    #[test]
    fn quoted_strings_and_escapes_are_read() {
        let (filter, rendered) = rules(r#"'a, b' "c \"d\"", \x23top 'it\'s\n', plain \,"#);
        let from: Vec<&[u8]> = filter.rules.iter().map(|r| &r.from[..]).collect();
        assert_eq!(from, [&b"a, b"[..], b"#top", b"plain"]);
        let to: Vec<&[u8]> = rendered.0.iter().map(|t| &t[..]).collect();
        assert_eq!(to, [&b"c \"d\""[..], b"it's\n", b","]);
        assert!(SubFilter::parse("").unwrap().is_empty());
        // A replacement naming a variable has no text without a request.
        let host = SubFilter::parse("a '$host/', b c").unwrap();
        assert!(host.rendered_without_request().is_none());
        assert!(!SubFilter::parse("a b").unwrap().is_empty());
    }

    /// Each limit is taken up to its last allowed value, and refused
    /// past it.
    #[test]
    fn limits_hold_up_to_their_last_value() {
        let longest = format!("{} y", "x".repeat(MAX_FROM));
        assert!(SubFilter::parse(&longest).is_ok());
        let to = "y".repeat(MAX_TO);
        assert!(SubFilter::parse(&format!("x {to}")).is_ok());
        let e = SubFilter::parse(&format!("x {to}y")).unwrap_err();
        assert!(e.contains("at most 4096"), "{e}");
        let most = (0..MAX_RULES)
            .map(|i| format!("a{i} b"))
            .collect::<Vec<_>>()
            .join(", ");
        assert_eq!(SubFilter::parse(&most).unwrap().rules.len(), MAX_RULES);
    }

    #[test]
    fn bad_rules_are_refused_with_what_is_wrong() {
        for (v, says) in [
            ("a", "a rule is two strings"),
            ("a b c", "a rule is two strings"),
            ("a b,", "a rule is two strings"),
            ("'a b", "not closed"),
            ("'' b", "1 to 255 bytes"),
            ("a b, A c", "found by an earlier rule"),
            ("a $remote_addr", "may differ between two requests"),
            ("a \\x8f", "ASCII byte"),
            ("a \\x2", "two hexadecimal digits"),
            ("a b\\", "a `\\` ends it"),
        ] {
            let e = SubFilter::parse(v).unwrap_err();
            assert!(e.contains(says), "{v}: {e}");
        }
        let many = vec!["a b"; MAX_RULES + 1]
            .iter()
            .enumerate()
            .map(|(i, _)| format!("a{i} b"))
            .collect::<Vec<_>>()
            .join(", ");
        assert!(SubFilter::parse(&many).unwrap_err().contains("at most 32"));
        let long = "x".repeat(MAX_FROM + 1);
        assert!(SubFilter::parse(&format!("{long} y")).is_err());
    }

    #[test]
    fn validators_are_dropped_or_weakened() {
        let mut h = Headers::default();
        h.push("ETag", "\"v1\"");
        h.push("Last-Modified", "Tue, 01 Dec 2026 10:00:00 GMT");
        h.push("Accept-Ranges", "bytes");
        let mut kept = h.clone();
        edit_validators(&mut h, false);
        assert!(
            !h.contains("etag") && !h.contains("last-modified") && !h.contains("accept-ranges")
        );
        edit_validators(&mut kept, true);
        assert_eq!(kept.get_str("etag"), Some("W/\"v1\""));
        assert!(kept.contains("last-modified"));
        edit_validators(&mut kept, true);
        assert_eq!(kept.get_str("etag"), Some("W/\"v1\""));
    }

    #[test]
    fn only_whole_uncoded_bodies_of_the_types_are_rewritten() {
        let types = MediaTypes::parse("text/html").unwrap();
        let html = |extra: &[(&str, &str)]| {
            let mut h = Headers::default();
            h.push("Content-Type", "text/html; charset=utf-8");
            for (name, value) in extra {
                h.push(name, value);
            }
            h
        };
        assert!(rewrites(&types, 200, &html(&[])));
        assert!(rewrites(
            &types,
            404,
            &html(&[("Content-Encoding", "identity")])
        ));
        assert!(!rewrites(&types, 206, &html(&[])));
        assert!(!rewrites(
            &types,
            200,
            &html(&[("Content-Encoding", "gzip")])
        ));
        assert!(!rewrites(
            &types,
            200,
            &html(&[("Cache-Control", "no-transform")])
        ));
        let mut json = Headers::default();
        json.push("Content-Type", "application/json");
        assert!(!rewrites(&types, 200, &json));
        let none = Headers::default();
        assert!(validates_rewritten(&types, &none, &none, false));
        assert!(!validates_rewritten(&types, &json, &none, false));
        // Keeping validators, a 304 of no type is a rewritten body's
        // when the weak tag it was given is what was asked after.
        let mut strong = Headers::default();
        strong.push("ETag", "\"v1\"");
        let asking = |tag: &str| {
            let mut h = Headers::default();
            h.push("If-None-Match", tag);
            h
        };
        assert!(validates_rewritten(
            &types,
            &strong,
            &asking("\"v0\", W/\"v1\""),
            true
        ));
        assert!(!validates_rewritten(
            &types,
            &strong,
            &asking("\"v1\""),
            true
        ));
        assert!(!validates_rewritten(&types, &strong, &none, true));
    }

    /// What the rules make of `body`, the slow way: at each byte, the
    /// first rule (not used, with `once`) whose string begins there.
    fn reference(rules: &[(Vec<u8>, Vec<u8>)], once: bool, body: &[u8]) -> Vec<u8> {
        let (mut made, mut used, mut at) = (Vec::new(), vec![false; rules.len()], 0);
        'bytes: while at < body.len() {
            for (i, (from, to)) in rules.iter().enumerate() {
                let here = body.get(at..at + from.len());
                if !used[i] && here.is_some_and(|h| h.eq_ignore_ascii_case(from)) {
                    made.extend_from_slice(to);
                    at += from.len();
                    used[i] = once;
                    continue 'bytes;
                }
            }
            made.push(body[at]);
            at += 1;
        }
        made
    }

    proptest::proptest! {
        /// Whatever the pieces, the body is made as the slow way makes it.
        #[test]
        fn pieces_make_what_the_whole_makes(
            strings in proptest::collection::vec(("[abAB<]{1,4}", "[xy]{0,3}"), 1..5),
            body in "[abAB<c]{0,60}",
            sizes in proptest::collection::vec(1usize..9, 1..20),
            once in proptest::bool::ANY,
        ) {
            let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
            for (from, to) in strings {
                if !pairs.iter().any(|(f, _)| f.eq_ignore_ascii_case(from.as_bytes())) {
                    pairs.push((from.into_bytes(), to.into_bytes()));
                }
            }
            let v = (pairs.iter())
                .map(|(f, t)| format!("'{}' '{}'", String::from_utf8_lossy(f), String::from_utf8_lossy(t)))
                .collect::<Vec<_>>()
                .join(", ");
            let (filter, rendered) = super::tests::rules(&v);
            let mut sub = filter.substitution(&rendered, once);
            let mut made = Vec::new();
            let (mut rest, mut size) = (body.as_bytes(), sizes.iter().cycle());
            loop {
                let n = (*size.next().unwrap()).min(rest.len());
                let (piece, after) = rest.split_at(n);
                rest = after;
                sub.pass(piece, rest.is_empty(), |out| made.extend_from_slice(out));
                if rest.is_empty() {
                    break;
                }
            }
            let expected = reference(&pairs, once, body.as_bytes());
            proptest::prop_assert_eq!(
                String::from_utf8_lossy(&made),
                String::from_utf8_lossy(&expected),
                "rules {}", v
            );
        }
    }
}
