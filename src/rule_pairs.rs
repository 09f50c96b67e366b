//! The `<from> <to>` rules of `location_rewrite` and `cookie_domain`
//! (nginx's `proxy_redirect` and `proxy_cookie_domain`), comma separated,
//! each two words; what each word may be is the setting's to say.

/// Most rules one setting lists: each value a backend sends is compared
/// with them in turn.
const MAX_RULES: usize = 32;

/// The rules of `v` as `(from, to)`, in the order written; none when it
/// is empty. `example` is a rule as the setting's are written, for the
/// message that says what a rule is.
pub fn parse<'a>(v: &'a str, example: &str) -> Result<Vec<(&'a str, &'a str)>, String> {
    if v.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut rules = Vec::new();
    for entry in v.split(',') {
        let words: Vec<&str> = entry.split_whitespace().collect();
        let [from, to] = words[..] else {
            return Err(format!(
                "`{}`: a rule is `<from> <to>` (`{example}`), rules separated by commas",
                entry.trim()
            ));
        };
        if from.starts_with('~') {
            return Err(format!(
                "`{from}`: nginx's regular expressions are not read here; write what the \
                 value begins with, as it comes"
            ));
        }
        if entry.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            return Err(format!("`{}`: a control character", entry.trim()));
        }
        rules.push((from, to));
    }
    if rules.len() > MAX_RULES {
        return Err(format!("{} rules; at most {MAX_RULES}", rules.len()));
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_two_words_each_comma_separated() {
        assert_eq!(parse(" ", "a b").unwrap(), []);
        assert_eq!(parse("a b, c\td", "a b").unwrap(), [("a", "b"), ("c", "d")]);
        let err = |v: &str| parse(v, "x.internal x.com").unwrap_err();
        assert!(err("a").contains("a rule is `<from> <to>` (`x.internal x.com`)"));
        assert!(err("a b c").contains("`a b c`: a rule is"));
        assert!(err("a b,").contains("a rule is"));
        assert!(err("~^a b").contains("regular expressions"));
        assert!(err("a b\u{1}").contains("control character"));
        let many = vec!["a b"; 33].join(",");
        assert!(err(&many).contains("33 rules; at most 32"));
        assert_eq!(parse(&vec!["a b"; 32].join(","), "").unwrap().len(), 32);
    }
}
