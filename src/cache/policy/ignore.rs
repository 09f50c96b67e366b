//! Response fields the cache does not read when it decides whether and
//! for how long to store (the `cache_ignore_headers` setting), as nginx's
//! `proxy_ignore_headers`: the operator's word over the origin's, for
//! applications that say `Cache-Control: no-cache, private` or set a
//! cookie on every page and are micro-cached all the same
//! (`cache_valid = 200 1s`). Only what the cache reads changes: clients
//! get the fields as the origin sent them.

use super::Targeting;
use crate::http::ResponseHead;
use std::borrow::Cow;

/// The fields the setting may list, spelled as nginx's
/// `proxy_ignore_headers` spells them; a field's bit is its place here.
const FIELDS: [&str; 6] = [
    "Cache-Control",
    "Expires",
    "Set-Cookie",
    "Vary",
    "X-Accel-Expires",
    "Surrogate-Control",
];

/// Those [`IgnoredHeaders::read`] takes out of a response: the others are
/// read through [`Targeting`], whose own switches turn them off (see
/// [`IgnoredHeaders::targeting`]).
const TAKEN_OUT: [&str; 4] = ["cache-control", "expires", "set-cookie", "vary"];

/// A set of [`FIELDS`], empty by default (every field is read).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IgnoredHeaders {
    /// Bit `i` for `FIELDS[i]`.
    bits: u8,
}

impl IgnoredHeaders {
    /// `Cache-Control, Expires, Set-Cookie` (spaces work as separators
    /// too, as nginx writes them), in any case; empty = none. Each name
    /// once.
    pub fn parse(v: &str) -> Result<IgnoredHeaders, String> {
        let mut set = IgnoredHeaders::default();
        for name in v
            .split(|c: char| c == ',' || c.is_ascii_whitespace())
            .filter(|w| !w.is_empty())
        {
            let Some(i) = FIELDS.iter().position(|f| f.eq_ignore_ascii_case(name)) else {
                return Err(not_a_choice(name));
            };
            if set.bits & (1 << i) != 0 {
                return Err(format!("{} is listed twice", FIELDS[i]));
            }
            set.bits |= 1 << i;
        }
        Ok(set)
    }

    pub fn is_empty(&self) -> bool {
        self.bits == 0
    }

    /// Whether field `name` (any case) is listed.
    pub fn ignores(&self, name: &str) -> bool {
        self.names().any(|f| f.eq_ignore_ascii_case(name))
    }

    /// The names listed, as [`FIELDS`] spells them, in its order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        (FIELDS.iter().enumerate())
            .filter(|(i, _)| self.bits & (1 << i) != 0)
            .map(|(_, f)| *f)
    }

    /// A response as the cache reads it: without the listed fields of
    /// [`TAKEN_OUT`]. A copy only when it has one of them.
    pub fn read<'a>(&self, response: &'a ResponseHead) -> Cow<'a, ResponseHead> {
        let listed = || TAKEN_OUT.iter().filter(|name| self.ignores(name));
        if !listed().any(|name| response.headers.contains(name)) {
            return Cow::Borrowed(response);
        }
        let mut read = response.clone();
        for name in listed() {
            read.headers.remove(name);
        }
        Cow::Owned(read)
    }

    /// `targeting` without the fields listed of those it reads:
    /// `X-Accel-Expires` as with `x_accel_expires = false`,
    /// `Surrogate-Control` as with an empty `surrogate_id` (neither read
    /// nor removed, and the cache not announced in `Surrogate-Capability`:
    /// an origin would send directives for nothing).
    pub fn targeting(&self, mut targeting: Targeting) -> Targeting {
        if self.ignores("x-accel-expires") {
            targeting.x_accel_expires = false;
        }
        if self.ignores("surrogate-control") {
            targeting.surrogate_id = None;
        }
        targeting
    }
}

/// Why `name` may not be listed.
fn not_a_choice(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let name = name.escape_debug();
    if lower.ends_with("-cache-control") {
        // A targeted field is read only because `targeted_cache_control`
        // lists it: two settings saying opposite things of one field.
        format!(
            "`{name}` is read only when targeted_cache_control lists it: take it off that list \
             instead"
        )
    } else if lower.starts_with("x-accel-") {
        format!(
            "inverso does not act on `{name}` (of nginx's X-Accel fields it reads \
             X-Accel-Expires alone): there is nothing to ignore"
        )
    } else {
        format!(
            "`{name}` is not a field the cache reads to decide what to store: list {}",
            either(&FIELDS)
        )
    }
}

/// `a, b or c`.
fn either(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}
