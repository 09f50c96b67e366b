//! The messages for keys that are not taken: unknown ones, with the
//! nearest known name as a hint, and file-only ones given in the
//! environment or a flag.

use super::{FieldFamily, KEYS};

/// The families of keys named after a dot (`pool.api`, `route./api/`,
/// `rewrite.old-blog`) that only the file holds, where they stand in
/// order; an environment variable's name cannot spell their `.` and `/`
/// either. (The field families have their own message: [`file_only`].)
pub(super) const FILE_ONLY: [&str; 5] = ["pool", "route", "rewrite", "deny", "stream"];

/// Why a key of [`FILE_ONLY`] given elsewhere than in the file is not
/// taken.
pub(super) fn file_only_keys(key: &str) -> String {
    format!(
        "`{}`: pool.*, route.*, rewrite.*, deny.* and stream.* keys are read from the configuration file only",
        key.escape_debug()
    )
}

/// Why a `request_header.*` or `response_header.*` key given elsewhere
/// than in the file is not taken.
pub(super) fn file_only(family: FieldFamily, key: &str) -> String {
    format!(
        "`{}`: {}<Field-Name> keys are read from the configuration file only, \
         where they stand together, one line per field (an environment variable's name \
         cannot spell their `.` and `-` either)",
        key.escape_debug(),
        family.prefix()
    )
}

/// The families of [`FILE_ONLY`]: what follows the dot, what a key of
/// each is set to, what one key stands for, and what the dot needs, for
/// a key written without it (`pool = 10.0.0.5:80`).
const NAMED_AFTER_A_DOT: [(&str, &str, &str, &str, &str); 5] = [
    ("pool", "<name>", "host:port, ...", "pool", "a name"),
    (
        "route",
        "<host><path>",
        "<pool>",
        "route",
        "a host, a path or both",
    ),
    (
        "rewrite",
        "<name>",
        "<pattern> <replacement> [<flag>] [host=<hosts>]",
        "rule",
        "a name",
    ),
    (
        "deny",
        "<name>",
        "[<status>] if <condition>",
        "rule",
        "a name",
    ),
    (
        "stream",
        "<name>",
        "<pool> listen=[ADDR:]PORT",
        "TCP listener",
        "a name",
    ),
];

pub(super) fn unknown_key_message(key: &str) -> String {
    // A key is a short word: anything long is garbage, shown cut and not
    // compared (the edit distance is quadratic).
    const SHOWN: usize = 64;
    if key.len() > SHOWN {
        let cut = (0..=SHOWN)
            .rev()
            .find(|&i| key.is_char_boundary(i))
            .unwrap_or(0);
        return format!(
            "unknown key `{}...` ({} bytes)",
            key[..cut].escape_debug(),
            key.len()
        );
    }
    let key = key.escape_debug().to_string();
    let key = key.as_str();
    // The families' names without their dot, candidates among the keys:
    // a key with a dot can only be a member of one (no other key has a
    // dot), misspelt before the name after the dot.
    let families = FieldFamily::ALL.map(|f| (f.name(), f));
    let family_named = |name: &str| families.iter().find(|(n, _)| *n == name).map(|(_, f)| *f);
    if let Some((prefix, rest)) = key.split_once('.') {
        let names = (families.iter().map(|(name, _)| *name)).chain(FILE_ONLY);
        let nearest = nearest_to(prefix, key.len(), names).filter(|_| !rest.is_empty());
        return match nearest {
            Some(name) => format!("unknown key `{key}` (did you mean `{name}.{rest}`?)"),
            None => format!("unknown key `{key}`"),
        };
    }
    let named = |name: &str| NAMED_AFTER_A_DOT.iter().find(|n| n.0 == name);
    if let Some((family, spec, value, one, needs)) = named(key) {
        return format!("`{family}` needs {needs}: `{family}.{spec} = {value}`, one key per {one}");
    }
    if let Some(f) = family_named(key) {
        let (set, remove) = f.examples();
        let prefix = f.prefix();
        return format!(
            "`{key}` needs a field name: `{prefix}{set}` sets that field on {}, \
             `{prefix}{remove}` removes it",
            f.messages()
        );
    }
    let names = (KEYS.iter().map(|k| k.name)).chain(families.iter().map(|(name, _)| *name));
    // A family only when nearer than any key: `prot` is `port`, not `pool`.
    let near_key = nearest(key, names);
    let near_family = nearest(key, FILE_ONLY).filter(|family| {
        near_key.is_none_or(|near| edit_distance(key, family) < edit_distance(key, near))
    });
    let Some(name) = near_family.or(near_key) else {
        return format!("unknown key `{key}`");
    };
    match (named(name), family_named(name)) {
        (Some((family, spec, _, one, _)), _) => {
            format!("unknown key `{key}` (did you mean `{family}.{spec}`, one key per {one}?)")
        }
        (None, Some(f)) => format!(
            "unknown key `{key}` (did you mean `{}<Field-Name>`, one key per field?)",
            f.prefix()
        ),
        (None, None) => format!("unknown key `{key}` (did you mean `{name}`?)"),
    }
}

/// The name among `names` that `word` most likely misspells, for a "did
/// you mean" hint; none when each is too far from it.
pub(crate) fn nearest<'a>(word: &str, names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    nearest_to(word, word.len(), names)
}

/// [`nearest`], with closeness judged against `len` bytes rather than the
/// word's own length: the part of a key before its dot is judged by the
/// whole key's.
fn nearest_to<'a>(
    word: &str,
    len: usize,
    names: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    // Not when most of a short word would have to change (`foo` is no
    // misspelt `port`).
    let close = |d: usize, name: &str| d <= 3.max(name.len() / 4) && 2 * d <= len.min(name.len());
    names
        .into_iter()
        .map(|name| (edit_distance(word, name), name))
        .min()
        .filter(|(d, name)| close(*d, name))
        .map(|(_, name)| name)
}

/// Levenshtein distance, for "did you mean" hints.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca.to_ascii_lowercase() != *cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use crate::config::tests::build;
    use crate::config::Loader;

    #[test]
    fn odd_keys_are_shown_escaped_and_long_ones_cut() {
        let e = build("targets = 127.0.0.1:1\npo\0rt = 1\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "proxy.conf:2: unknown key `po\\0rt` (did you mean `port`?)"
        );
        let long = "k".repeat(100_000);
        let e = build(&format!("targets = 127.0.0.1:1\n{long} = 1\n")).unwrap_err();
        assert!(e.message.len() < 200, "{}", e.message);
        assert!(e.message.contains("100000 bytes"), "{}", e.message);
    }

    #[test]
    fn a_file_only_family_without_its_dot_is_hinted_at_never_another_key() {
        for (line, says) in [
            (
                "pool = 127.0.0.1:2",
                "proxy.conf:2: `pool` needs a name: `pool.<name> = host:port, ...`, one key per pool",
            ),
            (
                "route = api",
                "proxy.conf:2: `route` needs a host, a path or both: `route.<host><path> = <pool>`, \
                 one key per route",
            ),
            (
                "pools = 127.0.0.1:2",
                "proxy.conf:2: unknown key `pools` (did you mean `pool.<name>`, one key per pool?)",
            ),
            (
                "routes = api",
                "proxy.conf:2: unknown key `routes` (did you mean `route.<host><path>`, one key \
                 per route?)",
            ),
            (
                "rout = api",
                "proxy.conf:2: unknown key `rout` (did you mean `route.<host><path>`, one key \
                 per route?)",
            ),
            ("prot = 1", "proxy.conf:2: unknown key `prot` (did you mean `port`?)"),
        ] {
            let e = build(&format!("targets = 127.0.0.1:1\n{line}\n")).unwrap_err();
            assert_eq!(e.to_string(), says, "{line}");
        }
        // The same from the command line, where `--set pool=...` is as
        // easily written.
        let e = Loader::new()
            .flag("pool", "127.0.0.1:2", "--set")
            .unwrap_err();
        assert!(e.message.starts_with("`pool` needs a name"), "{e}");
    }
}
